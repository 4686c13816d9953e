package upgrade

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestInheritRejects(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pipeFD := strconv.Itoa(int(r.Fd()))
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"not a number", map[string]string{EnvInheritFDs: "3,x"}, EnvInheritFDs},
		{"standard stream", map[string]string{EnvInheritFDs: "0"}, EnvInheritFDs},
		{"twice", map[string]string{EnvInheritFDs: "7,7"}, EnvInheritFDs},
		{"not a listener", map[string]string{EnvInheritFDs: pipeFD}, "not a listening socket"},
		{"ready fd not a pipe", map[string]string{EnvReadyFD: "1"}, EnvReadyFD},
		{"ready fd among the listeners", map[string]string{EnvInheritFDs: pipeFD, EnvReadyFD: pipeFD}, EnvReadyFD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			lns, _, err := Inherit("")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Inherit with %v = %v, %v; want an error naming %s", tt.env, lns, err, tt.want)
			}
			for k := range tt.env {
				if v, ok := os.LookupEnv(k); ok {
					t.Errorf("%s=%s still set after Inherit", k, v)
				}
			}
		})
	}
	// Not started by an upgrade: nothing, and a ready that does nothing.
	lns, ready, err := Inherit("")
	if len(lns) != 0 || err != nil || ready() != nil {
		t.Errorf("Inherit without the variables = %v, %v", lns, err)
	}
}
