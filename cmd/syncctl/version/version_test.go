package version

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
)

func TestNewCmdVersion(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdVersion}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "StrayArgument", Args: []string{"now"}, WantCobraErr: `unknown command "now"`},
	})
}

func TestString(t *testing.T) {
	t.Parallel()
	settings := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, tt := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{name: "Release", info: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: settings("vcs", "git", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-12-06T07:00:00Z", "vcs.modified", "false")},
			want: "syncctl v1.2.3 (revision 0123456789abcdef, 2026-12-06T07:00:00Z, go1.26.0)"},
		{name: "DirtyCheckout", info: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261206070000-0123456789ab+dirty"},
			Settings: settings("vcs.revision", "0123456789abcdef", "vcs.modified", "true")},
			want: "syncctl v0.0.0-20261206070000-0123456789ab+dirty (revision 0123456789abcdef, modified, go1.26.0)"},
		{name: "NoVCS", info: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			want: "syncctl (devel) (revision unknown, go1.26.0)"},
		{name: "NoBuildInfo", info: nil, want: "syncctl unknown (no build information)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, String(tt.info))
		})
	}
}

func TestVersionRun(t *testing.T) {
	t.Parallel()
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}
	f, out, errOut := cmdtest.NewFactory(t, false)
	require.NoError(t, versionRun(&Options{Factory: f, BuildInfo: func() (*debug.BuildInfo, bool) { return info, true }}))
	require.Equal(t, "syncctl v1.2.3 (revision abc, go1.26.0)\n", out.String())
	require.Empty(t, errOut.String())

	f, out, _ = cmdtest.NewFactory(t, false)
	require.NoError(t, versionRun(&Options{Factory: f, BuildInfo: func() (*debug.BuildInfo, bool) { return nil, false }}))
	require.Equal(t, "syncctl unknown (no build information)\n", out.String())
}
