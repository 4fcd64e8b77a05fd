package migrate

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/internal/testdb"
)

func TestNewCmdMigrate(t *testing.T) {
	t.Parallel()
	cmdtest.Command[Options]{NewCmd: NewCmdMigrate}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Plain", Args: nil, Want: &Options{}},
		{Name: "Fixture", Args: []string{"--with-fixture", "--sample-data"}, Want: &Options{WithFixture: true, SampleData: true}},
		{Name: "StrayArgument", Args: []string{"now"}, WantCobraErr: `unknown command "now"`},
	})
}

func TestMigrateRun(t *testing.T) {
	t.Parallel()
	db := testdb.Empty(t)
	var name string
	require.NoError(t, db.QueryRow(`SELECT current_database()`).Scan(&name))

	cmd := cmdtest.Command[Options]{NewCmd: NewCmdMigrate, DatabaseURL: testdb.URLOf(t, name)}

	_, _, err := cmd.Run(t, false)
	require.EqualError(t, err, `migrate: host table "organisations" is missing: stripe-sync installs into an existing LodgeTix database`)

	out, errOut, err := cmd.Run(t, false, "--with-fixture", "--sample-data")
	require.NoError(t, err)
	require.Empty(t, out, "migrate reports on stderr; stdout stays for data")
	require.Contains(t, errOut, "migrate: applied ")
	require.Contains(t, errOut, "003_enqueue_triggers.sql")

	_, errOut, err = cmd.Run(t, false)
	require.NoError(t, err)
	require.Equal(t, "migrate: already up to date\n", errOut)

	var jobs int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM stripe_sync.river_job WHERE kind LIKE 'stripe_sync_%'`).Scan(&jobs))
	require.Equal(t, 8, jobs, "the sample data went in through the triggers: 4 events, 4 tickets")
}
