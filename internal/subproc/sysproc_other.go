//go:build !linux

package subproc

import "syscall"

// sysProcAttr puts a child in its own process group, so a kill reaches
// everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
