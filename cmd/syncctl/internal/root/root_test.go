package root

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/version"
)

func TestMain_completion(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		shell string
		want  string
	}{
		{shell: "bash", want: "__start_syncctl"},
		{shell: "zsh", want: "#compdef syncctl"},
		{shell: "fish", want: "complete -c syncctl"},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			t.Parallel()
			streams, out, errOut := cmdutil.Test(false)
			require.Equal(t, 0, Main([]string{"completion", tt.shell}, streams, cmdtest.NoEnv))
			require.Contains(t, out.String(), tt.want)
			require.Empty(t, errOut.String())
		})
	}
}

func TestMain_usageErrors(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{name: "UnknownCommand", args: []string{"frobnicate"}, want: `syncctl: unknown command "frobnicate" for "syncctl"`},
		{name: "UnknownFlag", args: []string{"backfill", "--everything"}, want: "syncctl: unknown flag: --everything"},
		{name: "MalformedOrg", args: []string{"backfill", "--org", "acme"}, want: `syncctl: --org: malformed id "acme"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			streams, out, errOut := cmdutil.Test(false)
			require.Equal(t, 2, Main(tt.args, streams, cmdtest.NoEnv))
			require.Empty(t, out.String())
			lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
			require.Len(t, lines, 1, "one line on stderr: %q", errOut.String())
			require.True(t, strings.HasPrefix(lines[0], tt.want), "got %q", lines[0])
		})
	}
}

func TestMain_completionUnknownShell(t *testing.T) {
	t.Parallel()
	streams, out, errOut := cmdutil.Test(false)
	require.Equal(t, 2, Main([]string{"completion", "tcsh"}, streams, cmdtest.NoEnv))
	require.Empty(t, out.String())
	require.Equal(t, "syncctl: completion: unknown shell \"tcsh\" (want bash, zsh, fish or powershell)\n", errOut.String())
}

func TestMain_version(t *testing.T) {
	t.Parallel()
	info, ok := debug.ReadBuildInfo()
	require.True(t, ok)
	want := version.String(info) + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		streams, out, errOut := cmdutil.Test(false)
		require.Equal(t, 0, Main(args, streams, cmdtest.NoEnv))
		require.Equal(t, want, out.String())
		require.True(t, strings.HasPrefix(out.String(), "syncctl "))
		require.Empty(t, errOut.String())
	}
}
