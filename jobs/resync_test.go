package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
)

// The resync job re-enqueues an entity whose last change landed after its
// last job had started but that job ended without completing (the window
// between a cancelling job's last transaction and River finalising it), and
// leaves alone an entity whose job an operator cancelled after the change.
// A ticket is re-enqueued the same way; its event's job stays cancelled, so
// only the resync can have enqueued it (an event's job enqueues its unsynced
// tickets).
func TestResyncWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{NoWorker: true, Jobs: jobs.Options{ResyncInterval: 100 * time.Millisecond}})
	missed, cancelled, ticketsEvent := eventID(20), eventID(21), eventID(22)
	missedTicket := ticketID(20)
	insertEvent(t, b, missed, orgID, "Missed change")
	insertEvent(t, b, cancelled, orgID, "Cancelled by an operator")
	insertEvent(t, b, ticketsEvent, orgID, "Cancelled, with a ticket whose change was missed")
	insertTicket(t, b, missedTicket, ticketsEvent, "Mason", "95.00")

	// As if every job ran and was cancelled; the missed ones' entities
	// changed after their job started, the others' before.
	b.Exec(t, `UPDATE river_job SET state = 'cancelled', finalized_at = now(), attempt = 1,
		attempted_at = CASE WHEN args->>'event_id' = $1 OR args->>'ticket_id' = $2
		                    THEN now() - interval '1 minute' ELSE now() + interval '1 minute' END
		WHERE kind IN ('stripe_sync_event', 'stripe_sync_ticket')`, missed, missedTicket)
	b.StartWorker(t)

	deadline := time.Now().Add(15 * time.Second)
	for product(t, b, account, jobs.ProductID(missed)) == nil {
		require.True(t, time.Now().Before(deadline), "the missed change was never re-enqueued")
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if _, active := pricesOf(b, account, missedTicket); active == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the missed ticket change was never re-enqueued")
		time.Sleep(20 * time.Millisecond)
	}
	b.WaitIdle(t, 10*time.Second)

	// Let the resync run a few more times: the cancelled one must stay put.
	var runsBefore int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_resync'`).Scan(&runsBefore))
	deadline = time.Now().Add(10 * time.Second)
	for {
		var runs int
		require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_resync' AND state = 'completed'`).Scan(&runs))
		if runs >= runsBefore+2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "resync stopped running")
		time.Sleep(20 * time.Millisecond)
	}
	require.Nil(t, product(t, b, account, jobs.ProductID(cancelled)), "an operator's cancel is not undone")
	var jobsForCancelled int
	require.NoError(t, b.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_event' AND args->>'event_id' = $1`, cancelled).Scan(&jobsForCancelled))
	require.Equal(t, 1, jobsForCancelled)
}
