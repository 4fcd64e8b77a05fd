package subproc

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEnv(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://elsewhere")
	t.Setenv("SYNCCTL_CONCURRENCY", "99")
	t.Setenv("STRIPE_SECRET_KEY", "sk_test_parent")
	t.Setenv("SUBPROC_KEPT", "yes")
	env := strings.Join(Env("DATABASE_URL=postgres://mine"), "\n")
	require.NotContains(t, env, "elsewhere")
	require.NotContains(t, env, "SYNCCTL_CONCURRENCY")
	require.NotContains(t, env, "sk_test_parent")
	require.Contains(t, env, "SUBPROC_KEPT=yes")
	require.True(t, strings.HasSuffix(env, "\nDATABASE_URL=postgres://mine"))
}

func TestProcess(t *testing.T) {
	t.Parallel()

	t.Run("KillReachesTheGroup", func(t *testing.T) {
		t.Parallel()
		// The shell ignores SIGTERM and leaves a grandchild behind; Kill
		// must end both.
		p, err := Start("sh", "/bin/sh", Env(), "-c", `trap '' TERM; sleep 300 & echo "child $!"; wait`)
		require.NoError(t, err)
		line, err := p.WaitLine("child ", 10*time.Second)
		require.NoError(t, err)
		var pid int
		_, err = fmt.Sscan(strings.TrimPrefix(line, "child "), &pid)
		require.NoError(t, err)
		require.NoError(t, p.Stop(100*time.Millisecond))
		require.False(t, p.Running())
		require.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil }, 10*time.Second, 10*time.Millisecond,
			"the grandchild outlived the kill")
	})

	t.Run("WaitLineSaysWhyItGaveUp", func(t *testing.T) {
		t.Parallel()
		p, err := Start("sh", "/bin/sh", Env(), "-c", "echo starting; exit 3")
		require.NoError(t, err)
		_, err = p.WaitLine("ready", 10*time.Second)
		require.ErrorContains(t, err, `sh exited (exit status 3) before printing "ready":`)
		require.ErrorContains(t, err, "starting")
		code, err := p.WaitExit(time.Second)
		require.NoError(t, err)
		require.Equal(t, 3, code)
	})
}
