/* The smallest CGI program, for benchmarks: build it with
 *   cc -O2 -o hello-c hello.c
 * and put the binary in the runner's root. */
#include <stdio.h>

int main(void) {
	fputs("Content-Type: text/plain\r\n\r\nHello, World!\n", stdout);
	return 0;
}
