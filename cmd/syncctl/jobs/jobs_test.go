package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
)

func TestNewCmdJobs(t *testing.T) {
	t.Parallel()

	t.Run("AssemblesItsVerbs", func(t *testing.T) {
		t.Parallel()
		f, _, _ := cmdtest.NewFactory(t, false)
		var verbs []string
		for _, c := range NewCmdJobs(f).Commands() {
			verbs = append(verbs, c.Name())
		}
		require.Equal(t, []string{"cancel", "list", "show"}, verbs)
	})

	t.Run("UnknownVerb", func(t *testing.T) {
		t.Parallel()
		f, out, _ := cmdtest.NewFactory(t, false)
		cmd := NewCmdJobs(f)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true // as root sets them
		cmd.SetArgs([]string{"retry"})
		cmd.SetOut(f.IO.Out)
		cmd.SetErr(f.IO.ErrOut)
		require.EqualError(t, cmd.Execute(), `unknown command "retry" for "jobs"`)
		require.Empty(t, out.String(), "no help text in place of the error")
	})
}
