package migrate

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
)

func TestNewCmdMigrate(t *testing.T) {
	t.Parallel()
	cmdtest.Command[Options]{NewCmd: NewCmdMigrate}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Plain", Args: nil, Want: &Options{}},
		{Name: "Fixture", Args: []string{"--with-fixture", "--sample-data"}, Want: &Options{WithFixture: true, SampleData: true}},
		{Name: "WorkerRole", Args: []string{"--worker-role", "sync_worker"}, Want: &Options{WorkerRole: "sync_worker"}},
		{Name: "PrintSQL", Args: []string{"--print-sql"}, Want: &Options{PrintSQL: true}},
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

func TestMigrateRun_schemaAndWorkerRole(t *testing.T) {
	t.Parallel()
	db := testdb.Empty(t)
	var name string
	require.NoError(t, db.QueryRow(`SELECT current_database()`).Scan(&name))
	cmd := cmdtest.Command[Options]{NewCmd: NewCmdMigrate, DatabaseURL: testdb.URLOf(t, name)}

	_, _, err := cmd.Run(t, false, "--with-fixture", "--worker-role", "no_such_role_here")
	require.EqualError(t, err, `migrate: worker role "no_such_role_here" does not exist: create it first (CREATE ROLE no_such_role_here LOGIN PASSWORD '...')`)

	bad := cmd
	bad.Schema = "Sync-Tables"
	_, _, err = bad.Run(t, false)
	require.ErrorContains(t, err, `schema "Sync-Tables": must be 1-50 lower-case letters`)
	require.Equal(t, 2, cmdutil.ExitCode(err))

	custom := cmd
	custom.Schema = "lodgetix_sync"
	_, errOut, err := custom.Run(t, false, "--with-fixture", "--worker-role", testdb.WorkerRole)
	require.NoError(t, err, errOut)
	var tables int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'lodgetix_sync'
		AND tablename IN ('river_job', 'stripe_sync_state', 'stripe_sync_log', 'stripe_sync_migrations')`).Scan(&tables))
	require.Equal(t, 4, tables)
	var canWork bool
	require.NoError(t, db.QueryRow(`SELECT has_table_privilege($1, 'lodgetix_sync.river_job', 'SELECT, UPDATE')
		AND has_column_privilege($1, 'events', 'stripe_product_id', 'UPDATE')
		AND NOT has_column_privilege($1, 'events', 'title', 'UPDATE')`, testdb.WorkerRole).Scan(&canWork))
	require.True(t, canWork, "the worker role reads the queue and writes back only the Stripe ids")
}

func TestMigrateRun_printSQL(t *testing.T) {
	t.Parallel()
	out, errOut, err := cmdtest.Command[Options]{NewCmd: NewCmdMigrate, Schema: "lodgetix_sync"}.Run(t, false, "--print-sql")
	require.NoError(t, err, "no database is needed to print the script")
	require.Empty(t, errOut)
	require.Contains(t, out, "CREATE SCHEMA IF NOT EXISTS lodgetix_sync;")
	require.Contains(t, out, "CREATE TABLE lodgetix_sync.river_job(")
	require.NotContains(t, out, "{{schema}}")
}
