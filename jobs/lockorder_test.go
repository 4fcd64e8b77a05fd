package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
)

// Every path that locks several state rows takes them in the host's order,
// so the host's own transactions never get a deadlock error from PostgreSQL
// because of us: events with their tickets deleted (the cascade locks the
// event, its tickets and their state rows, then the event's state row)
// while the organisation's account moves (the organisation worker enqueues
// the whole catalogue) and `reconcile --fix` re-enqueues it. 30 s, or
// LOCKORDER_DURATION.
func TestOrgWorker_lockOrderWithHostDeletes(t *testing.T) {
	t.Parallel()
	duration := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("LOCKORDER_DURATION")); err == nil {
		duration = d
	}
	b := setup(t, synctesting.Options{})
	ctx := context.Background()

	const events, tickets = 8, 6
	// Ticket ids descend as they are inserted, so the cascade meets them in
	// the opposite order to an ORDER BY id.
	insertCatalogue := func(round int) {
		for e := range events {
			ev := eventID(1000*round + e)
			insertEvent(t, b, ev, orgID, fmt.Sprintf("Event %d/%d", round, e))
			for k := tickets - 1; k >= 0; k-- {
				insertTicket(t, b, ticketID(100000*round+100*e+k), ev, fmt.Sprintf("T%d", k), "10")
			}
		}
	}
	insertCatalogue(1)
	b.WaitIdle(t, 30*time.Second)

	var (
		stop      atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		deadlocks []error
		hostOps   atomic.Int64
	)
	hostErr := func(err error) {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			mu.Lock()
			deadlocks = append(deadlocks, err)
			mu.Unlock()
			return
		}
		require.NoError(t, err)
	}
	wg.Add(3)
	go func() { // the host deletes whole events and puts them back
		defer wg.Done()
		for round := 2; !stop.Load(); round++ {
			_, err := b.Pool.Exec(ctx, `DELETE FROM events WHERE organisation_id = $1`, orgID)
			if err != nil {
				hostErr(err)
				continue
			}
			hostOps.Add(1)
			for e := range events {
				ev := eventID(1000*round + e)
				tx, err := b.Pool.Begin(ctx)
				require.NoError(t, err)
				_, err = tx.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'E', true)`, ev, orgID)
				require.NoError(t, err)
				for k := tickets - 1; k >= 0; k-- {
					_, err = tx.Exec(ctx, `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'T', 10)`,
						ticketID(100000*(round%10)+100*e+k+1000000*(round/10)), ev)
					require.NoError(t, err)
				}
				if err := tx.Commit(ctx); err != nil {
					hostErr(err)
				}
			}
		}
	}()
	go func() { // the organisation's account moves back and forth
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			acct := []string{account, otherAccount}[i%2]
			if _, err := b.Pool.Exec(ctx, `UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, orgID, acct); err != nil {
				hostErr(err)
			}
			hostOps.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() { // reconcile --fix's repair path over the whole catalogue
		defer wg.Done()
		r := &jobs.Reconciler{Pool: b.Pool, Stripe: b.Stripe}
		for !stop.Load() {
			rows, err := b.Pool.Query(ctx, `
				SELECT 'event', event_id::text FROM events UNION ALL SELECT 'ticket', id::text FROM event_tickets`)
			require.NoError(t, err)
			var findings []jobs.Finding
			for rows.Next() {
				var kind, id string
				require.NoError(t, rows.Scan(&kind, &id))
				findings = append(findings, jobs.Finding{Kind: outbox.Kind(kind), EntityID: id, Problem: jobs.ProblemDrift})
			}
			require.NoError(t, rows.Err())
			if _, err := r.Fix(ctx, b.River, findings); err != nil {
				t.Logf("reconcile --fix: %v", err) // ours to retry, not the host's
			}
		}
	}()
	time.Sleep(duration)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d host operations in %s", hostOps.Load(), duration)
	require.Empty(t, deadlocks, "a deadlock error reached the host")
}
