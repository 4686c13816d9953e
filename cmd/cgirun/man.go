package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cgirun/cgirun/internal/buildinfo"
	"github.com/cgirun/cgirun/internal/settings"
)

// helpPage is what a command's --help is made of: its text, its flags and
// its config struct, whose CGIRUN_* variables the help lists.
type helpPage struct {
	text string
	fs   *flag.FlagSet
	spec any
}

// helpPages collects the help pages writeHelp is asked to write to it,
// instead of their text: "cgirun man" runs each command's --help into
// one and writes the man page from the same definitions.
type helpPages struct{ pages []helpPage }

// Write discards text that is not a help page (the version command's).
func (p *helpPages) Write(b []byte) (int, error) { return len(b), nil }

// man writes the manual page cgirun(1), in roff, to stdout: the top help,
// then each command's help, flags and CGIRUN_* variables, all from the
// definitions --help prints. It is not listed among the commands: the
// release build runs it to make the packages' man page.
func (c *cli) man(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (cgirun man takes none)", args[0])
	}
	var top bytes.Buffer
	topUsage(&top)
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH CGIRUN 1 \"\" %s \"User Commands\"\n", roffQuote("cgirun "+buildinfo.Version()))
	b.WriteString(".SH NAME\ncgirun \\- run CGI executables over FastCGI or HTTP, put an HTTP front on a FastCGI server, probe one\n")
	writeRoffText(&b, "SYNOPSIS", "DESCRIPTION", top.String())
	for _, cmd := range commands {
		p, ok, err := c.helpPage(ctx, cmd)
		if err != nil {
			return err
		}
		if !ok {
			continue // version: no flags, no variables
		}
		fmt.Fprintf(&b, ".SH %s\n", roffQuote("COMMAND "+strings.ToUpper(cmd.name)))
		writeRoffText(&b, "", "", p.text)
		writeRoffFlags(&b, p.fs)
		writeRoffEnv(&b, p.spec)
	}
	b.WriteString(".SH EXIT STATUS\n0 done, 1 failed, 2 a usage error (a mistake on the command line or in a CGIRUN_* variable).\n")
	b.WriteString(".SH SEE ALSO\n.BR fcgiwrap (8),\n.BR nginx (8),\n.BR systemd.socket (5),\n.BR spawn\\-fcgi (1)\n")
	_, err := c.stdout.Write(b.Bytes())
	return err
}

// helpPage returns the help page cmd's --help writes, and false for a
// command that writes none.
func (c *cli) helpPage(ctx context.Context, cmd command) (helpPage, bool, error) {
	pages := &helpPages{}
	sub := &cli{getenv: c.getenv, stdin: c.stdin, stdout: pages, stderr: io.Discard}
	if err := cmd.run(sub, ctx, []string{"--help"}); err != errHelp {
		return helpPage{}, false, fmt.Errorf("help of %s: %v", cmd.name, err)
	}
	if len(pages.pages) == 0 {
		return helpPage{}, false, nil
	}
	return pages.pages[0], true, nil
}

// writeRoffText writes a help text as roff paragraphs. Its "Usage:" lines
// go under the section synopsis (when not empty) as they are, the rest
// under the section rest, each paragraph filled by the formatter; indented
// lines are kept as they are.
func writeRoffText(b *bytes.Buffer, synopsis, rest, text string) {
	paras := strings.Split(strings.Trim(text, "\n"), "\n\n")
	if len(paras) > 0 && strings.HasPrefix(paras[0], "Usage:") {
		if synopsis != "" {
			fmt.Fprintf(b, ".SH %s\n", synopsis)
		} else {
			b.WriteString(".PP\n")
		}
		b.WriteString(".nf\n")
		for _, line := range strings.Split(paras[0], "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "Usage:"))
			b.WriteString(roffLine(line) + "\n")
		}
		b.WriteString(".fi\n")
		paras = paras[1:]
	}
	if rest != "" {
		fmt.Fprintf(b, ".SH %s\n", rest)
	}
	for _, p := range paras {
		b.WriteString(".PP\n")
		lines := strings.Split(p, "\n")
		if strings.HasPrefix(lines[len(lines)-1], "  ") {
			// A list, such as the commands: kept line by line.
			b.WriteString(".nf\n")
			for _, l := range lines {
				b.WriteString(roffLine(l) + "\n")
			}
			b.WriteString(".fi\n")
			continue
		}
		for _, l := range lines {
			b.WriteString(roffLine(strings.TrimSpace(l)) + "\n")
		}
	}
}

// writeRoffFlags writes the flags of fs as writeHelp does, one tagged
// paragraph each.
func writeRoffFlags(b *bytes.Buffer, fs *flag.FlagSet) {
	if fs == nil {
		return
	}
	b.WriteString(".SS Flags\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name == "" {
			fmt.Fprintf(b, ".TP\n.B %s\n", roffEscape(dashed(f.Name)))
		} else {
			fmt.Fprintf(b, ".TP\n.BI %s %s\n", roffQuote(dashed(f.Name)+" "), roffQuote(name))
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			// A default the usage states itself (-c's, from the CPUs)
			// would be the build machine's.
			if !strings.Contains(usage, "default") {
				usage += " (default " + f.DefValue + ")"
			}
		}
		b.WriteString(roffLine(usage) + "\n")
	})
}

// writeRoffEnv writes the CGIRUN_* variables of spec as writeHelp lists
// them: name, type, default and meaning.
func writeRoffEnv(b *bytes.Buffer, spec any) {
	if spec == nil {
		return
	}
	vars, _ := settings.Vars(envPrefix, spec)
	b.WriteString(".SS Environment\nThe flags override these variables; lists are comma-separated.\n")
	for _, v := range vars {
		what := v.Type
		if v.Default != "" {
			what += ", default " + v.Default
		}
		fmt.Fprintf(b, ".TP\n.BR %s \" (%s)\"\n%s\n", roffEscape(v.Key), roffEscape(what), roffLine(v.Desc))
	}
}

// roffLine escapes a line of text for roff: backslashes, hyphens, and a
// leading dot or quote that roff would take for a request.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffQuote quotes a macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `""`) + `"`
}
