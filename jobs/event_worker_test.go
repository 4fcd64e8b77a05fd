package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

const (
	orgID     = "0a000000-0000-4000-8000-0000000000aa"
	noAcctOrg = "0a000000-0000-4000-8000-0000000000bb"
	account   = "acct_1TestOrg"
)

func eventID(n int) string { return fmt.Sprintf("0e000000-0000-4000-8000-%012d", n) }

func setup(t *testing.T, opts synctesting.Options) *synctesting.Bundle {
	t.Helper()
	b := synctesting.Start(t, opts)
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2), ($3, 'No account', NULL)`,
		orgID, account, noAcctOrg)
	return b
}

func insertEvent(t *testing.T, b *synctesting.Bundle, id, org, title string) {
	t.Helper()
	b.Exec(t, `
		INSERT INTO events (event_id, organisation_id, title, description, type, slug, event_start, event_end, image_url, is_published)
		VALUES ($1, $2, $3, 'A fine evening.', 'banquet', 'fine-evening', '2026-12-12 19:00+11', '2026-12-12 23:00+11',
		        'https://img.example.org/e.jpg', true)`, id, org, title)
}

func product(t *testing.T, b *synctesting.Bundle, acct, id string) *stripeclient.Product {
	t.Helper()
	for _, p := range b.Emulator.Products(acct) {
		if p.ID == id {
			return &p
		}
	}
	return nil
}

type logRow struct {
	JobID  int64
	Action string
	Status string
	Object *string
	Msg    *string
}

func syncLog(t *testing.T, b *synctesting.Bundle, entityID string) []logRow {
	t.Helper()
	rows, err := b.Pool.Query(context.Background(), `
		SELECT job_id, action, status, stripe_object_id, error_message FROM stripe_sync_log
		WHERE entity_id = $1 ORDER BY created_at, id`, entityID)
	require.NoError(t, err)
	defer rows.Close()
	var out []logRow
	for rows.Next() {
		var r logRow
		require.NoError(t, rows.Scan(&r.JobID, &r.Action, &r.Status, &r.Object, &r.Msg))
		out = append(out, r)
	}
	return out
}

func TestEventWorker_lifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	id := eventID(1)
	prodID := jobs.ProductID(id)

	// Create: one Product with the mapped fields on the organisation's account.
	insertEvent(t, b, id, orgID, "Grand Installation")
	b.WaitIdle(t, 10*time.Second)
	p := product(t, b, account, prodID)
	require.NotNil(t, p, "product on the connected account")
	require.Equal(t, "Grand Installation", p.Name)
	require.Equal(t, "A fine evening.", p.Description)
	require.Equal(t, []string{"https://img.example.org/e.jpg"}, p.Images)
	require.True(t, p.Active)
	require.Equal(t, map[string]string{
		"event_id": id, "event_type": "banquet", "event_slug": "fine-evening", "organisation_id": orgID,
		"event_start": "2026-12-12T08:00:00Z", "event_end": "2026-12-12T12:00:00Z",
	}, p.Metadata, "empty values (parent_event_id) are not stored")
	require.Empty(t, b.Emulator.Products(""), "nothing on the platform account")
	var written *string
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT stripe_product_id FROM events WHERE event_id = $1`, id).Scan(&written))
	require.Equal(t, prodID, *written)
	logs := syncLog(t, b, id)
	require.Len(t, logs, 1)
	require.Equal(t, jobs.StatusSuccess, logs[0].Status)
	require.Equal(t, jobs.ActionCreate, logs[0].Action)

	// Title change: the same Product, updated.
	writes := b.Emulator.WriteCount()
	b.Exec(t, `UPDATE events SET title = 'Grand Installation 2026' WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)
	require.Len(t, b.Emulator.Products(account), 1)
	require.Equal(t, "Grand Installation 2026", product(t, b, account, prodID).Name)
	require.Equal(t, writes+1, b.Emulator.WriteCount())

	// A change Stripe cannot see (beyond the 500th character) runs a job and
	// writes nothing.
	writes = b.Emulator.WriteCount()
	long := strings.Repeat("é", 500)
	b.Exec(t, `UPDATE events SET description = $2 WHERE event_id = $1`, id, long)
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, writes+1, b.Emulator.WriteCount())
	require.Equal(t, long, product(t, b, account, prodID).Description, "500 runes, not bytes")
	writes = b.Emulator.WriteCount()
	b.Exec(t, `UPDATE events SET description = $2 WHERE event_id = $1`, id, long+"more text Stripe never sees")
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, writes, b.Emulator.WriteCount(), "an update with nothing Stripe-visible changed makes zero Stripe writes")
	logs = syncLog(t, b, id)
	require.Equal(t, jobs.ActionUnchanged, logs[len(logs)-1].Action)

	// Unpublish: inactive.
	b.Exec(t, `UPDATE events SET is_published = false WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)
	require.False(t, product(t, b, account, prodID).Active)

	// Publish again, then delete: archived, never hard-deleted.
	b.Exec(t, `UPDATE events SET is_published = true WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)
	require.True(t, product(t, b, account, prodID).Active)
	b.Exec(t, `DELETE FROM events WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)
	p = product(t, b, account, prodID)
	require.NotNil(t, p)
	require.False(t, p.Active)
	logs = syncLog(t, b, id)
	require.Equal(t, jobs.ActionDelete, logs[len(logs)-1].Action)
	require.Equal(t, jobs.StatusSuccess, logs[len(logs)-1].Status)
	require.Len(t, b.Emulator.Products(account), 1, "no duplicate ever")
}

func TestEventWorker_noConnectedAccount(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	id := eventID(2)
	insertEvent(t, b, id, noAcctOrg, "Regular Meeting")
	b.WaitIdle(t, 10*time.Second)

	require.Empty(t, b.Emulator.Requests(), "no Stripe call")
	logs := syncLog(t, b, id)
	require.Len(t, logs, 1)
	require.Equal(t, jobs.StatusSkipped, logs[0].Status)
	require.Contains(t, *logs[0].Msg, "no connected Stripe account")
}

func TestEventWorker_blankTitleIsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	id := eventID(3)
	insertEvent(t, b, id, orgID, "  ")
	b.WaitIdle(t, 10*time.Second)

	var state string
	require.NoError(t, b.Pool.QueryRow(context.Background(),
		`SELECT state FROM river_job WHERE kind = 'stripe_sync_event' AND args->>'event_id' = $1`, id).Scan(&state))
	require.Equal(t, "cancelled", state)
	require.Empty(t, b.Emulator.Requests())
	logs := syncLog(t, b, id)
	require.Len(t, logs, 1)
	require.Equal(t, jobs.StatusFailed, logs[0].Status)
	require.Contains(t, *logs[0].Msg, "title is blank")

	// Fixing the row syncs it.
	b.Exec(t, `UPDATE events SET title = 'Fixed' WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, "Fixed", product(t, b, account, jobs.ProductID(id)).Name)
}

func TestEventWorker_responseLostOnCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultResponseLost, Method: "POST", PathPrefix: "/v1/products", Times: 1})
	id := eventID(4)
	insertEvent(t, b, id, orgID, "Lost in transit")
	b.WaitIdle(t, 20*time.Second)

	require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultResponseLost], "the fault fired")
	require.Len(t, b.Emulator.Products(account), 1, "exactly one Product after the retry")
	statuses := []string{}
	for _, l := range syncLog(t, b, id) {
		statuses = append(statuses, l.Status)
	}
	require.Equal(t, []string{jobs.StatusFailed, jobs.StatusSuccess}, statuses)
}

// An update that commits while the event's job is inside its Stripe call
// collapses into that running job (River dedupes against running jobs); the
// job must notice and sync again before completing.
func TestEventWorker_updateDuringRunIsNotLost(t *testing.T) {
	t.Parallel()
	inStripeCall := make(chan struct{})
	var once sync.Once
	b := setup(t, synctesting.Options{WrapStripe: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/products") {
				once.Do(func() { close(inStripeCall) })
			}
			next.ServeHTTP(w, r)
		})
	}})
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/products", Latency: 800 * time.Millisecond, Times: 1})
	id := eventID(5)
	insertEvent(t, b, id, orgID, "Before")

	// The job has read the row ("Before") and is inside its Stripe call.
	select {
	case <-inStripeCall:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never called Stripe")
	}
	b.Exec(t, `UPDATE events SET title = 'After' WHERE event_id = $1`, id)
	b.WaitIdle(t, 10*time.Second)

	require.Equal(t, "After", product(t, b, account, jobs.ProductID(id)).Name)
	var jobsForEvent int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_event'`).Scan(&jobsForEvent))
	require.Equal(t, 1, jobsForEvent, "the update collapsed into the running job, so only the version check can have caught it")
	logs := syncLog(t, b, id)
	require.Len(t, logs, 2)
	require.Equal(t, logs[0].JobID, logs[1].JobID, "the same job synced twice")
}

// Commit-to-Stripe latency with no backlog: how long from a committed insert
// to its Product existing in the emulator. Polling is slowed to 10 s here, so
// only the trigger's NOTIFY can wake the worker in time.
func TestEventWorker_commitToStripeLatency(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{Jobs: jobs.Options{FetchPollInterval: 10 * time.Second}})
	const n = 30
	var took []time.Duration
	for i := range n {
		id := eventID(100 + i)
		start := time.Now()
		insertEvent(t, b, id, orgID, fmt.Sprintf("Latency %d", i))
		for product(t, b, account, jobs.ProductID(id)) == nil {
			require.Less(t, time.Since(start), 10*time.Second)
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
		b.WaitIdle(t, 10*time.Second)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	p50, max := took[n/2], slices.Max(took)
	t.Logf("commit-to-Stripe latency over %d inserts: p50 %s, max %s", n, p50, max)
	require.Less(t, max, 5*time.Second, "only a 10 s poll found the job: the trigger's NOTIFY did not wake the worker")
}

// TestEventWorker_ticketsStayInTheJobsLane: an event's first sync enqueues
// its tickets; from a bulk job (a backfill's) that must not lift the
// tickets' waiting bulk jobs into the live lane, where they would hold up
// live edits.
func TestEventWorker_ticketsStayInTheJobsLane(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, synctesting.Options{NoWorker: true, Jobs: jobs.Options{Concurrency: 1}})
	insertEvent(t, b, eventID(1), orgID, "Backfilled")
	b.Exec(t, `INSERT INTO event_tickets (id, event_id, name, price) VALUES
		('07000000-0000-4000-8000-000000000001', $1, 'Adult', 10), ('07000000-0000-4000-8000-000000000002', $1, 'Child', 5)`, eventID(1))
	b.Exec(t, `DELETE FROM river_job; DELETE FROM stripe_sync_state`)
	require.NoError(t, pgx.BeginFunc(ctx, b.Pool, func(tx pgx.Tx) error {
		_, err := outbox.EnqueueBulk(ctx, b.River, tx,
			outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)},
			outbox.Entity{Kind: outbox.KindTicket, ID: "07000000-0000-4000-8000-000000000001"},
			outbox.Entity{Kind: outbox.KindTicket, ID: "07000000-0000-4000-8000-000000000002"})
		return err
	}))
	b.StartWorker(t)
	b.WaitIdle(t, 30*time.Second)

	rows, err := b.Pool.Query(ctx, `SELECT DISTINCT priority FROM river_job WHERE kind = 'stripe_sync_ticket'`)
	require.NoError(t, err)
	priorities, err := pgx.CollectRows(rows, pgx.RowTo[int16])
	require.NoError(t, err)
	require.Equal(t, []int16{outbox.PriorityBulk}, priorities)
	require.Len(t, b.Emulator.Prices(account), 2)
}
