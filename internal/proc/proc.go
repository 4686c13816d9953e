// Package proc holds what the module's packages that start processes (the
// CGI executor, the upgrade hand-over) say and do about them alike.
package proc

// ExitReason says how a process ended, from the error of its wait: "exit
// status 0" for nil, else the error's text ("exit status 3", "signal:
// killed"), as os.ProcessState and exec.ExitError say it.
func ExitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
