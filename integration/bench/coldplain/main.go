// Command coldplain prints a CGI hello world and nothing else: the floor
// of the cold-start benchmark, a Go program that starts and writes.
package main

import "os"

func main() {
	if _, err := os.Stdout.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nHello, World!\n"); err != nil {
		os.Exit(1)
	}
}
