package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// waitJobRetrying polls until the newest job of kind for the entity (args
// field idField = id) failed an attempt and waits for its retry (River keeps a
// retry due within its scheduler interval "available", with a later
// scheduled_at), failing t after timeout.
func waitJobRetrying(t *testing.T, b *synctesting.Bundle, kind, idField, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got string
		var failed bool
		err := b.Pool.QueryRow(context.Background(), `
			SELECT state, coalesce(array_length(errors, 1), 0) > 0 FROM river_job
			WHERE kind = $1 AND args->>($2::text) = $3::text ORDER BY id DESC LIMIT 1`,
			kind, idField, id).Scan(&got, &failed)
		if err == nil && failed && (got == "available" || got == "retryable") {
			return
		}
		require.True(t, time.Now().Before(deadline), "job %s %s never waited for a retry (last %q, %v)", kind, id, got, err)
		time.Sleep(5 * time.Millisecond)
	}
}

// A change reverted after a write whose answer was lost: the revert equals
// what was last recorded, yet Stripe may hold the lost write. The retry must
// not take the record's word for it.
func TestEventWorker_revertAfterLostAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	id := eventID(40)
	insertEvent(t, b, id, orgID, "Reverted")
	b.WaitIdle(t, 10*time.Second)
	require.True(t, product(t, b, account, jobs.ProductID(id)).Active)

	// v2 unpublishes: Stripe applies it, the answer is lost.
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultResponseLost, Method: "POST", PathPrefix: "/v1/products", Times: 1})
	b.Exec(t, `UPDATE events SET is_published = false WHERE event_id = $1`, id)
	waitJobRetrying(t, b, "stripe_sync_event", "event_id", id, 10*time.Second)
	require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultResponseLost])
	require.False(t, product(t, b, account, jobs.ProductID(id)).Active, "the lost write was applied")

	// v3 republishes before the retry: it equals v1, which was recorded.
	b.Exec(t, `UPDATE events SET is_published = true WHERE event_id = $1`, id)
	b.WaitIdle(t, 20*time.Second)
	require.True(t, product(t, b, account, jobs.ProductID(id)).Active, "the event is published, so its Product must be active")
}

func TestTicketWorker_revertAfterLostAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(41), ticketID(41)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)
	first := activePrice(t, b, account, tk)

	// 10 -> 20: the new Price is created (taking the lookup key), its answer
	// lost.
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultResponseLost, Method: "POST", PathPrefix: "/v1/prices", Times: 1})
	b.Exec(t, `UPDATE event_tickets SET price = 20 WHERE id = $1`, tk)
	waitJobRetrying(t, b, "stripe_sync_ticket", "ticket_id", tk, 10*time.Second)
	require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultResponseLost])

	// -> 10 again before the retry.
	b.Exec(t, `UPDATE event_tickets SET price = 10 WHERE id = $1`, tk)
	b.WaitIdle(t, 20*time.Second)
	p := activePrice(t, b, account, tk)
	require.Equal(t, int64(1000), p.UnitAmount)
	require.Equal(t, jobs.LookupKey(tk), p.LookupKey, "the current Price holds the lookup key")
	require.Equal(t, first.ID, p.ID, "the recorded 10.00 Price is reused")
}

// The chaos finding: the new Price is created, archiving the old one is
// refused (429), and the price goes back before the retry.
func TestTicketWorker_revertAfterRefusedArchive(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(42), ticketID(42)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)
	first := activePrice(t, b, account, tk)

	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultError500, Method: "POST", PathPrefix: "/v1/prices/" + first.ID, Times: 1})
	b.Exec(t, `UPDATE event_tickets SET price = 20 WHERE id = $1`, tk)
	waitJobRetrying(t, b, "stripe_sync_ticket", "ticket_id", tk, 10*time.Second)
	require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultError500])

	b.Exec(t, `UPDATE event_tickets SET price = 10 WHERE id = $1`, tk)
	b.WaitIdle(t, 20*time.Second)
	p := activePrice(t, b, account, tk)
	require.Equal(t, int64(1000), p.UnitAmount)
	require.Equal(t, jobs.LookupKey(tk), p.LookupKey)
}
