package subproc

import "syscall"

// sysProcAttr puts a child in its own process group, so a kill reaches
// everything it started, and has the kernel kill it if its parent dies
// first (a test timeout's panic, say), so no worker outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
