package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/migrations"
)

// TestScript applies --print-sql's script, in one transaction as
// supabase/migrations files are, and checks that `syncctl migrate` then finds
// nothing to do and that the result is what migrate itself installs.
func TestScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	script, err := migrations.Script("", testdb.WorkerRole)
	require.NoError(t, err)

	db, url := testdb.EmptyURL(t)
	require.NoError(t, migrations.InstallHostSchema(ctx, db))
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, script)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	res, err := migrations.Up(ctx, url, migrations.Options{})
	require.NoError(t, err)
	require.Empty(t, res.River, "River's bookkeeping is in the script")
	require.Empty(t, res.Project, "goose's bookkeeping is in the script")
	require.Empty(t, res.Moved)

	var jobs int
	_, err = db.ExecContext(ctx, `INSERT INTO organisations VALUES ('0a000000-0000-4000-8000-000000000001', 'Org', 'acct_1')`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ('0e000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'x')`)
	require.NoError(t, err)
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM stripe_sync.river_job`).Scan(&jobs))
	require.Equal(t, 1, jobs, "the script's triggers enqueue")

	var scriptStates, migratedStates string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT enum_range(NULL::stripe_sync.river_job_state)::text`).Scan(&scriptStates))
	require.NoError(t, testdb.New(t).QueryRow(ctx, `SELECT enum_range(NULL::stripe_sync.river_job_state)::text`).Scan(&migratedStates))
	require.Equal(t, migratedStates, scriptStates)

	_, err = migrations.Script("Bad-Name", "")
	require.ErrorContains(t, err, "lower-case letters")
}
