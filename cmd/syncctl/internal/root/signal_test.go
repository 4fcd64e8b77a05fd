package root

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/subproc"
)

// TestMain_signals runs the built binary: SIGINT and SIGTERM end a serving
// command cleanly (exit 0) through Main's one signal handler, which cancels
// the command's context.
func TestMain_signals(t *testing.T) {
	t.Parallel()
	bin, err := subproc.Build(context.Background(), t.TempDir())
	require.NoError(t, err)

	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p, err := subproc.Start("stripe-emulator", bin, subproc.Env(), "stripe-emulator", "--addr", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Kill(10 * time.Second) })
			_, err = p.WaitLine("stripe emulator listening on", 30*time.Second)
			require.NoError(t, err)
			require.NoError(t, p.Signal(sig))
			code, err := p.WaitExit(30 * time.Second)
			require.NoError(t, err)
			require.Equal(t, 0, code, "a signal is a clean shutdown:\n%s", p.Out.String())
		})
	}
}
