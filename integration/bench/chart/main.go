// Command chart draws the targets of the load benchmark as a PNG: it reads
// the markdown that integration/bench/run.sh prints and draws, for each row
// of its Targets table, the median as a bar, the lowest and highest pass as
// whiskers and the wanted bound as a black mark.
//
// Usage:
//
//	go run . [-o ratios.png] [-width 900] [-height 0] [RESULTS.md]
//
// With no file it reads standard input. On input it cannot read it prints
// one line to standard error, writes no PNG and exits with status 1.
//
// It is a module of its own so that users of cgirun never download the
// plotting library.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// defaultWidth is the picture's width in pixels when -width is not given.
const defaultWidth = 900

// errUsage is returned for a command line that the flag package has
// already reported.
var errUsage = errors.New("usage")

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run parses args, reads the benchmark's output from the named file or
// stdin, and writes the chart. It writes no file unless the input parsed
// and the chart rendered.
func run(args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "ratios.png", "the PNG file to write")
	width := fs.Int("width", defaultWidth, "the picture's width in pixels")
	height := fs.Int("height", 0, "the picture's height in pixels; 0 fits the number of bars")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: chart [-o ratios.png] [-width 900] [-height 0] [RESULTS.md]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}

	in, name := stdin, "standard input"
	if fs.NArg() == 1 {
		name = fs.Arg(0)
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		defer f.Close()
		in = f
	}
	rep, err := parse(in)
	if err != nil {
		return fmt.Errorf("chart: %s: %w", name, err)
	}
	png, err := render(rep, *width, *height)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := os.WriteFile(*out, png, 0o644); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}
