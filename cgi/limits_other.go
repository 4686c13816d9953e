//go:build !linux

package cgi

import "errors"

func (l Limits) apply(pid int) error {
	return errors.New("cgi: per-script limits need Linux")
}
