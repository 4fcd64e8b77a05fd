package backfill

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/outbox"
)

const orgID = "0a000000-0000-4000-8000-000000000001"

func TestNewCmdBackfill(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdBackfill}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{BatchSize: outbox.DefaultBackfillBatch}},
		{Name: "OrgNormalised", Args: []string{"--org", "0A000000-0000-4000-8000-000000000001"}, Want: &Options{Org: orgID, BatchSize: outbox.DefaultBackfillBatch}},
		{Name: "AllFlags", Args: []string{"--org", orgID, "--unsynced", "--batch", "50", "--json"}, Want: &Options{Org: orgID, Unsynced: true, BatchSize: 50, JSON: true}},
		{Name: "MalformedOrg", Args: []string{"--org", "acme"}, WantUsage: `--org: malformed id "acme"`},
		{Name: "ZeroBatch", Args: []string{"--batch", "0"}, WantUsage: "--batch must be at least 1"},
		{Name: "BatchNotANumber", Args: []string{"--batch", "many"}, WantCobraErr: `invalid argument "many"`},
		{Name: "Argument", Args: []string{"event"}, WantCobraErr: `unknown command "event"`},
	})
}

func TestBackfillRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// setup returns a database holding events 1..n of orgID with three
	// tickets each, and no jobs or sync state: rows that predate the install.
	setup := func(t *testing.T, n int) (*pgxpool.Pool, cmdtest.Command[Options]) {
		db := cmdtest.NewDB(t)
		db.Exec(t, `
			INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES
				('0a000000-0000-4000-8000-000000000001', 'Org', 'acct_1'),
				('0a000000-0000-4000-8000-000000000002', 'Other', 'acct_2')`)
		db.Exec(t, `
			INSERT INTO events (event_id, organisation_id, title)
			SELECT ('0e000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, $1, 'Event ' || g
			FROM generate_series(1, $2::int) g`, orgID, n)
		db.Exec(t, `
			INSERT INTO event_tickets (id, event_id, name, price)
			SELECT gen_random_uuid(), e.event_id, 'Ticket ' || k, 10 * k
			FROM events e, generate_series(1, 3) k`)
		db.Exec(t, `DELETE FROM river_job; DELETE FROM stripe_sync_state`)
		return db.Pool, cmdtest.Command[Options]{NewCmd: NewCmdBackfill, DatabaseURL: db.URL}
	}
	// jobs returns the number of sync jobs and of distinct entities they
	// name.
	jobs := func(t *testing.T, pool *pgxpool.Pool) (int, int) {
		var n, entities int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (kind, args)) FROM river_job`).Scan(&n, &entities))
		return n, entities
	}

	t.Run("ThousandEventsThreeTicketsEachOnceAlsoWhenRunTwice", func(t *testing.T) {
		t.Parallel()
		pool, cmd := setup(t, 1000)

		out, errOut := cmd.MustRun(t, false)
		require.Equal(t, "1000 events and 3000 tickets: 4000 jobs enqueued, 0 deduplicated (a job was already waiting)\n", out)
		require.Empty(t, errOut, "no progress bar off a terminal")
		n, entities := jobs(t, pool)
		require.Equal(t, 4000, n)
		require.Equal(t, 4000, entities)

		out, errOut = cmd.MustRun(t, true)
		require.Equal(t, "1000 events and 3000 tickets: 0 jobs enqueued, 4000 deduplicated (a job was already waiting)\n", out)
		bar := func(done int) string {
			filled := 30 * done / 4000
			return "\rbackfill [" + strings.Repeat("#", filled) + strings.Repeat(".", 30-filled) + "] " +
				strconv.Itoa(done) + "/4000"
		}
		require.Equal(t, bar(1000)+bar(3000)+bar(4000)+"\n", errOut, "one step per batch of DefaultBackfillBatch, events then tickets")
		n, _ = jobs(t, pool)
		require.Equal(t, 4000, n, "the second run adds no job")
	})

	t.Run("UnsyncedOrgAndJSON", func(t *testing.T) {
		t.Parallel()
		pool, cmd := setup(t, 3)
		_, err := pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES
			('0e000000-0000-4000-8000-000000000099', '0a000000-0000-4000-8000-000000000002', 'Elsewhere');
			DELETE FROM river_job;
			INSERT INTO stripe_sync_state (entity_type, entity_id, connected_account_id, stripe_object_id)
			SELECT 'ticket', id, 'acct_1', 'price_' || name FROM event_tickets
			WHERE event_id = '0e000000-0000-4000-8000-000000000001';
			INSERT INTO stripe_sync_state (entity_type, entity_id, connected_account_id, stripe_object_id) VALUES
				('event', '0e000000-0000-4000-8000-000000000001', 'acct_1', 'prod_1'),
				('event', '0e000000-0000-4000-8000-000000000002', 'acct_0', 'prod_2')`)
		require.NoError(t, err)

		out, _ := cmd.MustRun(t, false, "--unsynced", "--org", orgID, "--json")
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, map[string]any{
			"events": float64(2), "tickets": float64(6), "enqueued": float64(8), "deduplicated": float64(0),
		}, doc, "event 1 and its tickets are synced; event 2 is on an old account; event 99 is another organisation's")
		var unexpected int
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT count(*) FROM river_job WHERE args->>'event_id' IN
				('0e000000-0000-4000-8000-000000000001', '0e000000-0000-4000-8000-000000000099')`).Scan(&unexpected))
		require.Zero(t, unexpected)
		n, _ := jobs(t, pool)
		require.Equal(t, 8, n)
	})
}
