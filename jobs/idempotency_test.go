package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// The attempt after a 5xx, stored and replayed by Stripe, sends a new
// Idempotency-Key (issue 11.2): with a quarter of the writes answered by a
// stored 500, a catalogue converges, no job discarded, no duplicate object.
func TestTicketWorker_newKeyAfterStoredServerError(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	// Half of them applied before the 500, as Stripe may have.
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultError500Stored, Method: "POST", Probability: 0.125, Applied: true})
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultError500Stored, Method: "POST", Probability: 0.125 / 0.875})
	const events, tickets = 12, 2
	for e := range events {
		ev := eventID(700 + e)
		insertEvent(t, b, ev, orgID, fmt.Sprintf("Event %d", e))
		for k := range tickets {
			insertTicket(t, b, ticketID(7000+10*e+k), ev, fmt.Sprintf("T%d", k), "10")
		}
	}
	// River's backoff grows as attempt^4 seconds; run the retries now.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var busy int
		require.NoError(t, b.Pool.QueryRow(context.Background(), `
			SELECT count(*) FROM river_job WHERE kind IN ('stripe_sync_event', 'stripe_sync_ticket')
			  AND state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&busy))
		if busy == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d jobs never converged", busy)
		retryNow(t, b)
		time.Sleep(100 * time.Millisecond)
	}
	var notCompleted int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `
		SELECT count(*) FROM river_job WHERE kind IN ('stripe_sync_event', 'stripe_sync_ticket') AND state <> 'completed'`).Scan(&notCompleted))
	require.Zero(t, notCompleted, "no job discarded or cancelled")
	require.Greater(t, b.Emulator.FaultsInjected()[emulator.FaultError500Stored], 5, "stored 500s were answered")
	replayed := 0
	for _, r := range b.Emulator.Requests() {
		if r.Replayed && r.Status == http.StatusInternalServerError {
			replayed++
		}
	}
	require.Zero(t, replayed, "no attempt sent a key whose 500 Stripe had stored")

	require.Len(t, b.Emulator.Products(account), events, "no duplicate Product")
	require.Len(t, b.Emulator.Prices(account), events*tickets, "no duplicate Price")
	for e := range events {
		require.True(t, product(t, b, account, jobs.ProductID(eventID(700+e))).Active)
		for k := range tickets {
			activePrice(t, b, account, ticketID(7000+10*e+k))
		}
	}
}

// The attempt after a lost answer sends the same Idempotency-Key, so Stripe
// replays what it applied; the attempt after a 5xx sends a new one.
func TestEventWorker_idempotencyKeyAfterFailure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		fault   emulator.FaultKind
		sameKey bool
	}{
		{"LostAnswerSameKey", emulator.FaultResponseLost, true},
		{"ServerErrorNewKey", emulator.FaultError500, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, synctesting.Options{})
			id := eventID(80)
			insertEvent(t, b, id, orgID, "Keyed")
			b.WaitIdle(t, 10*time.Second)
			path := "/v1/products/" + jobs.ProductID(id)
			b.Emulator.AddFault(emulator.Fault{Kind: c.fault, Method: "POST", PathPrefix: path, Times: 1})
			b.Emulator.ResetRequests()
			b.Exec(t, `UPDATE events SET title = 'Keyed again' WHERE event_id = $1`, id)
			b.WaitIdle(t, 20*time.Second)

			var keys []string
			var replayed []bool
			for _, r := range b.Emulator.Requests() {
				if r.Method == http.MethodPost && r.Path == path {
					keys = append(keys, r.IdempotencyKey)
					replayed = append(replayed, r.Replayed)
				}
			}
			require.Len(t, keys, 2, "the failed write and its retry")
			if c.sameKey {
				require.Equal(t, keys[0], keys[1])
				require.True(t, replayed[1], "Stripe replayed the applied update")
			} else {
				require.NotEqual(t, keys[0], keys[1])
			}
			require.Equal(t, "Keyed again", product(t, b, account, jobs.ProductID(id)).Name)
		})
	}
}
