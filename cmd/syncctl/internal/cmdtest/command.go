// Package cmdtest is the scaffolding syncctl's command tests share: a
// Factory over buffers, a command run as root.Main would run it, argv ->
// options tables, and a fresh database seeded with sync jobs. Only _test.go
// files import it.
package cmdtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

// NoEnv is an empty environment: every name reads as "".
func NoEnv(string) string { return "" }

// NewFactory returns a Factory over test streams (a terminal if terminal)
// and an empty environment, with the buffers behind its stdout and stderr.
// The Factory is closed when t ends.
func NewFactory(t testing.TB, terminal bool) (*cmdutil.Factory, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	io, out, errOut := cmdutil.Test(terminal)
	f := cmdutil.NewFactory(io, NoEnv)
	t.Cleanup(f.Close)
	return f, out, errOut
}

// Command is one syncctl command under test. Its fields configure the
// Factory the command gets; a zero field leaves the Factory's default.
type Command[O any] struct {
	// NewCmd is the command's constructor, NewCmdX.
	NewCmd func(*cmdutil.Factory, func(context.Context, *O) error) *cobra.Command
	// DatabaseURL, StripeAPIBase and Schema stand for the root's flags.
	DatabaseURL   string
	StripeAPIBase string
	Schema        string
	// Env is the environment Getenv reads; a name not in it reads as "".
	Env map[string]string
	// Now, unless zero, is what the Factory's clock returns.
	Now time.Time
}

// Factory returns a Factory configured by c over test streams (a terminal
// if terminal), with the buffers behind its stdout and stderr. The Factory
// is closed when t ends.
func (c Command[O]) Factory(t testing.TB, terminal bool) (*cmdutil.Factory, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	f, out, errOut := NewFactory(t, terminal)
	if c.Env != nil {
		env := c.Env
		f.Getenv = func(name string) string { return env[name] }
	}
	f.DatabaseURL, f.StripeAPIBase, f.Schema = c.DatabaseURL, c.StripeAPIBase, c.Schema
	if !c.Now.IsZero() {
		now := c.Now
		f.Clock = func() time.Time { return now }
	}
	return f, out, errOut
}

// Run executes the command, doing its real work, with args, and returns
// what it wrote to stdout and to stderr, and Execute's error.
func (c Command[O]) Run(t testing.TB, terminal bool, args ...string) (string, string, error) {
	t.Helper()
	f, out, errOut := c.Factory(t, terminal)
	cmd := c.build(f, nil)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

// build makes the command as root.NewCmdRoot would hold it: flags default
// from the Factory's environment once the command line is parsed.
func (c Command[O]) build(f *cmdutil.Factory, runF func(context.Context, *O) error) *cobra.Command {
	cmd := c.NewCmd(f, runF)
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return cmdutil.ApplyEnv(cmd, f.Getenv) }
	return cmd
}

// MustRun is Run for a command that must succeed: it fails t on an error.
func (c Command[O]) MustRun(t testing.TB, terminal bool, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := c.Run(t, terminal, args...)
	require.NoError(t, err)
	return out, errOut
}
