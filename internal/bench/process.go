package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lodgetix/stripe-sync/internal/subproc"
)

// process is a syncctl subprocess (see package subproc) with its output
// kept for error messages.
type process struct{ *subproc.Process }

// syncctlEnv is the environment of a syncctl subprocess: the bench's own,
// without anything that could point it elsewhere, plus env.
func syncctlEnv(env ...string) []string { return subproc.Env(env...) }

// startProcess starts bin with args and env.
func startProcess(bin string, env []string, args ...string) (*process, error) {
	p, err := subproc.Start("syncctl "+args[0], bin, env, args...)
	if err != nil {
		return nil, err
	}
	return &process{p}, nil
}

// stop sends SIGTERM, waits up to grace, then kills. It is a no-op once the
// process has exited.
func (p *process) stop(grace time.Duration) { _ = p.Stop(grace) }

func (p *process) running() bool { return p.Running() }

// tail returns the last n lines of the process's output.
func (p *process) tail(n int) string { return subproc.Tail(p.Out.String(), n) }

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *process) peakRSS() (int64, error) {
	return procStatusKB(p.PID(), "VmHWM:")
}

// procStatusKB reads one "Key:   N kB" line of /proc/PID/status, in bytes.
func procStatusKB(pid int, key string) (int64, error) {
	kb, err := procStatusInt(pid, key)
	return kb * 1024, err
}

// procStatusInt reads the number on one "Key:   N [kB]" line of
// /proc/PID/status.
func procStatusInt(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read process status (Linux only): %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %q: %w", key, rest, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// runSyncctl runs a syncctl command to its end and returns its output and
// how long it took, process start included.
func runSyncctl(ctx context.Context, bin string, env []string, args ...string) (string, time.Duration, error) {
	return subproc.Run(ctx, bin, env, args...)
}
