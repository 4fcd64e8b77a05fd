// Package cmdutil is what every syncctl command shares: IO streams that know
// whether they face a terminal, the Factory of lazily built dependencies,
// usage errors (exit 2), and table/JSON output.
package cmdutil

import (
	"bytes"
	"io"
	"os"
)

// IOStreams are a command's standard streams. Data goes to Out; progress,
// warnings and errors go to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// IsTerminal says whether Out is a terminal: tables get headers and
	// progress bars are drawn only then.
	IsTerminal bool
}

// System returns the process's own streams.
func System() *IOStreams {
	fi, err := os.Stdout.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, IsTerminal: tty}
}

// Test returns streams writing to buffers, for tests.
func Test(terminal bool) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: errOut, IsTerminal: terminal}, out, errOut
}
