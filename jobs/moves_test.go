package jobs_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
)

const (
	otherOrg     = "0a000000-0000-4000-8000-0000000000cc"
	otherAccount = "acct_1OtherOrg"
)

func addOtherOrg(t *testing.T, b *synctesting.Bundle) {
	t.Helper()
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Other', $2)`, otherOrg, otherAccount)
}

// A ticket whose change was held up by its event (the job cancelled because
// the event's row could not sync) follows once the event is fixed.
func TestTicketWorker_heldUpByEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(50), ticketID(50)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)

	tx, err := b.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `UPDATE events SET title = ' ' WHERE event_id = $1`, ev)
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `UPDATE event_tickets SET price = 12.50 WHERE id = $1`, tk)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(context.Background()))
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, int64(1000), activePrice(t, b, account, tk).UnitAmount, "held up while the title is blank")

	b.Exec(t, `UPDATE events SET title = 'Banquet again' WHERE event_id = $1`, ev)
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, "Banquet again", product(t, b, account, jobs.ProductID(ev)).Name)
	require.Equal(t, int64(1250), activePrice(t, b, account, tk).UnitAmount, "the ticket's change reached Stripe once its event did")
}

// An event moved to another organisation and back: its tickets follow it
// each time, though the second move finds the Product already on the
// account (resource_already_exists), not newly created.
func TestEventWorker_moveAndBack(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	addOtherOrg(t, b)
	ev, tk := eventID(51), ticketID(51)
	insertEvent(t, b, ev, orgID, "Travelling")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)

	b.Exec(t, `UPDATE events SET organisation_id = $2 WHERE event_id = $1`, ev, otherOrg)
	b.WaitIdle(t, 10*time.Second)
	require.True(t, product(t, b, otherAccount, jobs.ProductID(ev)).Active)
	require.False(t, product(t, b, account, jobs.ProductID(ev)).Active)
	require.Equal(t, jobs.ProductID(ev), activePrice(t, b, otherAccount, tk).Product)
	_, active := pricesOf(b, account, tk)
	require.Zero(t, active, "the old account's Price archived")

	b.Exec(t, `UPDATE events SET organisation_id = $2 WHERE event_id = $1`, ev, orgID)
	b.WaitIdle(t, 10*time.Second)
	require.True(t, product(t, b, account, jobs.ProductID(ev)).Active)
	require.False(t, product(t, b, otherAccount, jobs.ProductID(ev)).Active)
	require.Equal(t, int64(1000), activePrice(t, b, account, tk).UnitAmount, "the ticket followed its event back")
	_, active = pricesOf(b, otherAccount, tk)
	require.Zero(t, active)
}

// An organisation's account change and back (A -> B -> A).
func TestOrgWorker_accountChangeAndBack(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(52), ticketID(52)
	insertEvent(t, b, ev, orgID, "Moving")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)

	for _, acct := range []string{otherAccount, account} {
		b.Exec(t, `UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, orgID, acct)
		b.WaitIdle(t, 20*time.Second)
		require.True(t, product(t, b, acct, jobs.ProductID(ev)).Active, acct)
		require.Equal(t, int64(1000), activePrice(t, b, acct, tk).UnitAmount, acct)
	}
	require.False(t, product(t, b, otherAccount, jobs.ProductID(ev)).Active)
	_, active := pricesOf(b, otherAccount, tk)
	require.Zero(t, active)
}

// refusing answers every request on one account the way Stripe answers for
// an account that deauthorised the platform, while on is set.
func refusing(acct string, on *atomic.Bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if on.Load() && r.Header.Get("Stripe-Account") == acct {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"error": {"type": "invalid_request_error", "code": "account_invalid",
					"message": "The provided key does not have access to account '`+acct+`' (or that account does not exist). Application access may have been revoked."}}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// One account that refuses us (deauthorised) blocks nothing else: a move
// away from it and a delete go on, the other accounts are cleaned, and the
// refusing account is tried again later.
func TestEventWorker_unreachableAccountBlocksNothing(t *testing.T) {
	t.Parallel()
	var refuse atomic.Bool
	b := setup(t, synctesting.Options{WrapStripe: refusing(account, &refuse)})
	addOtherOrg(t, b)
	ev, tk := eventID(53), ticketID(53)
	insertEvent(t, b, ev, orgID, "Stranded")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)

	// The first account deauthorises us; the event moves to the other. The
	// jobs keep retrying the clean-up of the first account meanwhile.
	refuse.Store(true)
	b.Exec(t, `UPDATE events SET organisation_id = $2 WHERE event_id = $1`, ev, otherOrg)
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := product(t, b, otherAccount, jobs.ProductID(ev))
		_, active := pricesOf(b, otherAccount, tk)
		if p != nil && p.Active && active == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the move did not go on")
		time.Sleep(10 * time.Millisecond)
	}

	// Deleted while the first account still refuses: the other is cleaned.
	b.Exec(t, `DELETE FROM events WHERE event_id = $1`, ev)
	deadline = time.Now().Add(20 * time.Second)
	for {
		p := product(t, b, otherAccount, jobs.ProductID(ev))
		_, active := pricesOf(b, otherAccount, tk)
		if !p.Active && active == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the other account was never cleaned")
		time.Sleep(10 * time.Millisecond)
	}

	// It refused us, so it is marked unreachable and the jobs completed
	// rather than burning River's attempts on it.
	requireMarked(t, b, account)

	// The account lets us in again and the operator re-enqueues its
	// organisation, which clears the mark: what was left there is archived.
	refuse.Store(false)
	enqueueOrg(t, b, orgID)
	deadline = time.Now().Add(60 * time.Second)
	for {
		p := product(t, b, account, jobs.ProductID(ev))
		_, active := pricesOf(b, account, tk)
		if !p.Active && active == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the refusing account was never cleaned")
		time.Sleep(50 * time.Millisecond)
	}
	b.WaitIdle(t, 20*time.Second)
	require.False(t, product(t, b, account, jobs.ProductID(ev)).Active)
}

// retryNow makes every sync job waiting for a retry run now.
func retryNow(t *testing.T, b *synctesting.Bundle) {
	t.Helper()
	b.Exec(t, `UPDATE river_job SET scheduled_at = now() WHERE state IN ('retryable', 'available') AND kind LIKE 'stripe_sync_%'`)
}

// A move away from an account that refuses us must not forget the old
// account's Price: here a price change created a second Price there (which
// took the lookup key) before the old one's archive was refused, so the
// lookup key alone no longer finds the old one (chaos finding, seed
// 1796545574030047688).
func TestTicketWorker_moveOffRefusingAccountForgetsNothing(t *testing.T) {
	t.Parallel()
	var refuseAll, refuseArchive atomic.Bool
	var oldPrice atomic.Pointer[string]
	b := setup(t, synctesting.Options{WrapStripe: func(next http.Handler) http.Handler {
		all := refusing(account, &refuseAll)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := oldPrice.Load(); refuseArchive.Load() && p != nil && r.URL.Path == "/v1/prices/"+*p {
				var on atomic.Bool
				on.Store(true)
				refusing(account, &on)(next).ServeHTTP(w, r)
				return
			}
			all.ServeHTTP(w, r)
		})
	}})
	addOtherOrg(t, b)
	ev, tk := eventID(54), ticketID(54)
	insertEvent(t, b, ev, orgID, "Stranded")
	insertTicket(t, b, tk, ev, "Mason", "10.00")
	b.WaitIdle(t, 10*time.Second)
	first := activePrice(t, b, account, tk)
	oldPrice.Store(&first.ID)

	// A new amount: the new Price is created, archiving the old one refused:
	// the account is marked unreachable.
	refuseArchive.Store(true)
	b.Exec(t, `UPDATE event_tickets SET price = 20 WHERE id = $1`, tk)
	requireMarked(t, b, account)
	// Then the whole account refuses, and the event moves away from it.
	refuseAll.Store(true)
	b.Exec(t, `UPDATE events SET organisation_id = $2 WHERE event_id = $1`, ev, otherOrg)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, active := pricesOf(b, otherAccount, tk)
		if active == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the move did not go on")
		retryNow(t, b)
		time.Sleep(20 * time.Millisecond)
	}

	// The account answers again and its organisation is re-enqueued (the
	// mark cleared); the ticket is deleted.
	refuseArchive.Store(false)
	refuseAll.Store(false)
	enqueueOrg(t, b, orgID)
	b.Exec(t, `DELETE FROM event_tickets WHERE id = $1`, tk)
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, activeOld := pricesOf(b, account, tk)
		_, activeNew := pricesOf(b, otherAccount, tk)
		if activeOld == 0 && activeNew == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "a Price is still on sale: %d on the old account, %d on the new", activeOld, activeNew)
		retryNow(t, b)
		time.Sleep(20 * time.Millisecond)
	}
	b.WaitIdle(t, 20*time.Second)
}

// requireMarked waits until account is marked unreachable.
func requireMarked(t *testing.T, b *synctesting.Bundle, account string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var marked bool
		require.NoError(t, b.Pool.QueryRow(context.Background(),
			`SELECT EXISTS (SELECT FROM stripe_sync_unreachable_account WHERE account = $1)`, account).Scan(&marked))
		if marked {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s was never marked unreachable", account)
		time.Sleep(10 * time.Millisecond)
	}
}

// enqueueOrg is `syncctl enqueue org ID`: what an operator runs once the
// organisation has let the platform in again.
func enqueueOrg(t *testing.T, b *synctesting.Bundle, orgID string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(context.Background(), b.Pool, func(tx pgx.Tx) error {
		_, err := outbox.Enqueue(context.Background(), b.River, tx, outbox.Entity{Kind: outbox.KindOrg, ID: orgID})
		return err
	}))
}
