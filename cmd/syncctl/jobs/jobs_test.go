package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

func TestNewCmdJobs(t *testing.T) {
	t.Parallel()

	t.Run("AssemblesItsVerbs", func(t *testing.T) {
		t.Parallel()
		io, _, _ := cmdutil.Test(false)
		var verbs []string
		for _, c := range NewCmdJobs(cmdutil.NewFactory(io, func(string) string { return "" })).Commands() {
			verbs = append(verbs, c.Name())
		}
		require.Equal(t, []string{"cancel", "list", "show"}, verbs)
	})

	t.Run("UnknownVerb", func(t *testing.T) {
		t.Parallel()
		io, out, _ := cmdutil.Test(false)
		cmd := NewCmdJobs(cmdutil.NewFactory(io, func(string) string { return "" }))
		cmd.SilenceUsage, cmd.SilenceErrors = true, true // as root sets them
		cmd.SetArgs([]string{"retry"})
		cmd.SetOut(io.Out)
		cmd.SetErr(io.ErrOut)
		require.EqualError(t, cmd.Execute(), `unknown command "retry" for "jobs"`)
		require.Empty(t, out.String(), "no help text in place of the error")
	})
}
