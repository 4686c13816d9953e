package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestManPage: "cgirun man" writes a man page that holds, for every
// command, each flag and each CGIRUN_* variable its --help lists, and
// that groff formats without a warning.
func TestManPage(t *testing.T) {
	code, page, stderr := runCmd(t, nil, "man")
	if code != exitOK || stderr != "" {
		t.Fatalf("run(man) = %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if !strings.HasPrefix(page, ".TH CGIRUN 1 ") {
		t.Errorf("man page starts %.40q, want .TH CGIRUN 1", page)
	}
	flagRE := regexp.MustCompile(`(?m)^  (--?[\w-]+)`)
	envRE := regexp.MustCompile(`(?m)^  (CGIRUN_\w+) `)
	for _, cmd := range commands {
		if cmd.name == "version" {
			continue
		}
		t.Run(cmd.name, func(t *testing.T) {
			code, help, _ := runCmd(t, nil, cmd.name, "--help")
			if code != exitOK {
				t.Fatalf("run(%s --help) = %d, want 0", cmd.name, code)
			}
			_, section, ok := strings.Cut(page, `.SH "COMMAND `+strings.ToUpper(cmd.name)+`"`)
			if !ok {
				t.Fatalf("man page has no section COMMAND %s", strings.ToUpper(cmd.name))
			}
			section, _, _ = strings.Cut(section, "\n.SH ")
			flags, vars := flagRE.FindAllStringSubmatch(help, -1), envRE.FindAllStringSubmatch(help, -1)
			if len(flags) == 0 || len(vars) == 0 {
				t.Fatalf("%s --help lists %d flags and %d variables, want some of each:\n%s", cmd.name, len(flags), len(vars), help)
			}
			for _, f := range flags {
				name := roffEscape(f[1])
				if !strings.Contains(section, ".B "+name+"\n") && !strings.Contains(section, `.BI "`+name+` "`) {
					t.Errorf("man page section %s lacks the flag %s", cmd.name, f[1])
				}
			}
			for _, v := range vars {
				if !strings.Contains(section, ".BR "+v[1]+" ") {
					t.Errorf("man page section %s lacks the variable %s", cmd.name, v[1])
				}
			}
		})
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		var warn bytes.Buffer
		cmd.Stderr = &warn
		if err := cmd.Run(); err != nil || warn.Len() > 0 {
			t.Errorf("groff -man -ww: %v\n%s", err, warn.String())
		}
	}
}
