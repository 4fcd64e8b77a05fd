package migrate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
)

func TestNewCmdMigrate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		want Options
		err  string
	}{
		{name: "Plain", args: nil, want: Options{}},
		{name: "Fixture", args: []string{"--with-fixture", "--sample-data"}, want: Options{WithFixture: true, SampleData: true}},
		{name: "StrayArgument", args: []string{"now"}, err: `unknown command "now"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdMigrate(cmdutil.NewFactory(io, func(string) string { return "" }), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestMigrateRun(t *testing.T) {
	t.Parallel()
	db := testdb.Empty(t)
	var name string
	require.NoError(t, db.QueryRow(`SELECT current_database()`).Scan(&name))
	url := testdb.URLOf(t, name)

	run := func(args ...string) (string, string, error) {
		io, out, errOut := cmdutil.Test(false)
		f := cmdutil.NewFactory(io, func(string) string { return "" })
		f.DatabaseURL = url
		defer f.Close()
		cmd := NewCmdMigrate(f, nil)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}

	_, _, err := run()
	require.EqualError(t, err, `migrate: host table "organisations" is missing: stripe-sync installs into an existing LodgeTix database`)

	out, errOut, err := run("--with-fixture", "--sample-data")
	require.NoError(t, err)
	require.Empty(t, out, "migrate reports on stderr; stdout stays for data")
	require.Contains(t, errOut, "migrate: applied ")
	require.Contains(t, errOut, "003_enqueue_triggers.sql")

	_, errOut, err = run()
	require.NoError(t, err)
	require.Equal(t, "migrate: already up to date\n", errOut)

	var jobs int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM river_job WHERE kind LIKE 'stripe_sync_%'`).Scan(&jobs))
	require.Equal(t, 8, jobs, "the sample data went in through the triggers: 4 events, 4 tickets")
}
