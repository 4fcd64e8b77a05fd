// Package subproc runs syncctl as a subprocess, the way the benchmarks and
// the end-to-end tests need it: built once, started in a process group of
// its own (so a kill reaches everything it started, and on Linux the kernel
// kills it if its parent dies first), its stdout and stderr kept together
// for error messages, and an environment that cannot point it at another
// database, key or Stripe than the caller's.
//
// It takes no *testing.T: the benchmark is a program. Tests wrap it.
package subproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Package is syncctl's import path, what Build builds.
const Package = "github.com/lodgetix/stripe-sync/cmd/syncctl"

// Build builds syncctl into dir and returns the binary's path. It builds
// without -race whatever the caller runs with: the child runs on its own,
// and the race detector's slowdown would only distort its timings.
func Build(ctx context.Context, dir string, buildFlags ...string) (string, error) {
	bin := filepath.Join(dir, "syncctl")
	args := append(append([]string{"build", "-o", bin}, buildFlags...), Package)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build syncctl: %w\n%s", err, out)
	}
	return bin, nil
}

// scrubbed are the variables a child never inherits: each would point it at
// something other than what the caller passes explicitly.
var scrubbed = []string{"DATABASE_URL", "TEST_DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_SYNC_SCHEMA", "STRIPE_WEBHOOK_SECRET"}

// Env returns this process's environment without the variables that
// configure syncctl (those in scrubbed, and every SYNCCTL_ one), followed by
// extra ("NAME=value" each).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SYNCCTL_") || contains(scrubbed, k) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Output collects a process's stdout and stderr, interleaved. It is safe
// for concurrent use.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Line returns the first complete line containing substr; ok is false until
// one is written.
func (o *Output) Line(substr string) (line string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf.Bytes()
	i := bytes.Index(b, []byte(substr))
	if i < 0 {
		return "", false
	}
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\n')
	if end < 0 {
		return "", false
	}
	return string(b[start : i+end]), true
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Process is a subprocess in a process group of its own.
type Process struct {
	// Name names the process in errors.
	Name string
	// Cmd is the started command; read Cmd.ProcessState only after Exited.
	Cmd *exec.Cmd
	// Out holds its stdout and stderr.
	Out *Output

	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// Start starts bin with args and env (see Env) as a process named name.
func Start(name, bin string, env []string, args ...string) (*Process, error) {
	p := &Process{Name: name, Cmd: exec.Command(bin, args...), Out: &Output{}, exited: make(chan struct{})}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	p.Cmd.SysProcAttr = sysProcAttr()
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process's id, which is also its process group's.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running says whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err is what waiting for the process returned (nil for exit status 0);
// nil while it runs.
func (p *Process) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Signal sends sig to the process itself (not its group).
func (p *Process) Signal(sig os.Signal) error {
	if err := p.Cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// ErrStillRunning is returned when a process outlives a wait's timeout.
var ErrStillRunning = errors.New("still running")

// WaitExit waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal ended it). Returns an error wrapping ErrStillRunning
// if it runs on.
func (p *Process) WaitExit(timeout time.Duration) (int, error) {
	select {
	case <-p.exited:
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s: %w after %s", p.Name, ErrStillRunning, timeout)
	}
}

// Kill sends SIGKILL to the process group and waits up to timeout for the
// exit. It does nothing once the process has exited.
func (p *Process) Kill(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	_, err := p.WaitExit(timeout)
	return err
}

// Stop sends SIGTERM, waits up to grace for a graceful exit, then kills the
// group. It does nothing once the process has exited.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if _, err := p.WaitExit(grace); err == nil {
		return nil
	}
	return p.Kill(10 * time.Second)
}

// WaitLine polls the output until a complete line contains substr and
// returns it. Returns an error, with the output's tail, if the process exits
// first or timeout passes.
func (p *Process) WaitLine(substr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if line, ok := p.Out.Line(substr); ok {
			return line, nil
		}
		if !p.Running() {
			return "", fmt.Errorf("%s exited (%v) before printing %q:\n%s", p.Name, p.Err(), substr, Tail(p.Out.String(), 40))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s printed no %q within %s:\n%s", p.Name, substr, timeout, Tail(p.Out.String(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs bin with args and env to its end and returns its stdout and
// stderr, interleaved, and how long it took, process start included.
// Returns an error with the output if it exits non-zero.
func Run(ctx context.Context, bin string, env []string, args ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return string(out), took, fmt.Errorf("syncctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), took, nil
}
