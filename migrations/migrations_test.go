package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/migrations"
)

func TestUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("TwiceIsANoOp", func(t *testing.T) {
		t.Parallel()
		db, url := testdb.EmptyURL(t)
		require.NoError(t, migrations.InstallHostSchema(ctx, db))
		first, err := migrations.Up(ctx, url, migrations.Options{})
		require.NoError(t, err)
		require.NotEmpty(t, first.River)
		require.NotEmpty(t, first.Project)

		second, err := migrations.Up(ctx, url, migrations.Options{})
		require.NoError(t, err)
		require.Empty(t, second.River)
		require.Empty(t, second.Project)
	})

	t.Run("MissingHostTableNamesIt", func(t *testing.T) {
		t.Parallel()
		db, url := testdb.EmptyURL(t)
		_, err := db.ExecContext(ctx, `CREATE TABLE organisations (organisation_id uuid PRIMARY KEY, name text, stripe_onbehalfof text)`)
		require.NoError(t, err)
		_, err = migrations.Up(ctx, url, migrations.Options{})
		require.True(t, migrations.IsMissingHostTable(err))
		require.EqualError(t, err, `host table "events" is missing: stripe-sync installs into an existing LodgeTix database`)

		var riverInstalled bool
		require.NoError(t, db.QueryRowContext(ctx, `SELECT to_regclass('river_job') IS NOT NULL OR to_regclass('stripe_sync.river_job') IS NOT NULL`).Scan(&riverInstalled))
		require.False(t, riverInstalled, "nothing is installed before the host check passes")
	})

	t.Run("KeepsIDsFromTheOldSystem", func(t *testing.T) {
		t.Parallel()
		db, url := testdb.EmptyURL(t)
		// The old system's schema already had the id columns and filled them.
		require.NoError(t, migrations.InstallHostSchema(ctx, db))
		_, err := db.ExecContext(ctx, `
			INSERT INTO organisations VALUES ('0a000000-0000-4000-8000-000000000001', 'Org', 'acct_1');
			INSERT INTO events (event_id, organisation_id, title, stripe_product_id)
			VALUES ('0e000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'Old', 'prod_Legacy123');`)
		require.NoError(t, err)
		_, err = migrations.Up(ctx, url, migrations.Options{})
		require.NoError(t, err)
		var id string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT stripe_product_id FROM events`).Scan(&id))
		require.Equal(t, "prod_Legacy123", id)
	})

	t.Run("HostWithoutIDColumnsGetsThem", func(t *testing.T) {
		t.Parallel()
		db, url := testdb.EmptyURL(t)
		_, err := db.ExecContext(ctx, `
			CREATE TABLE organisations (organisation_id uuid PRIMARY KEY, name text, stripe_onbehalfof text);
			CREATE TABLE events (event_id uuid PRIMARY KEY, organisation_id uuid NOT NULL REFERENCES organisations,
				parent_event_id uuid, title text, description text, type text, slug text, event_start timestamptz,
				event_end timestamptz, image_url text, is_published boolean);
			CREATE TABLE event_tickets (id uuid PRIMARY KEY, event_id uuid NOT NULL REFERENCES events, name text,
				price numeric(10,2), eligibility_criteria jsonb, total_capacity integer);`)
		require.NoError(t, err)
		_, err = migrations.Up(ctx, url, migrations.Options{})
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `
			SELECT count(*) FROM information_schema.columns
			WHERE (table_name, column_name) IN (('events', 'stripe_product_id'), ('event_tickets', 'stripe_price_id'))`).Scan(&n))
		require.Equal(t, 2, n)
	})
}
