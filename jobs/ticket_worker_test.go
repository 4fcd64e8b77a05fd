package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

func ticketID(n int) string { return fmt.Sprintf("07000000-0000-4000-8000-%012d", n) }

func insertTicket(t *testing.T, b *synctesting.Bundle, id, event, name, price string) {
	t.Helper()
	b.Exec(t, `INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria, total_capacity)
		VALUES ($1, $2, $3, $4::numeric, '{"rules": ["mason"]}', 100)`, id, event, name, price)
}

// pricesOf returns the ticket's Prices on acct, and how many are active.
func pricesOf(b *synctesting.Bundle, acct, ticket string) ([]stripeclient.Price, int) {
	var out []stripeclient.Price
	active := 0
	for _, p := range b.Emulator.Prices(acct) {
		if p.Metadata["ticket_id"] == ticket {
			out = append(out, p)
			if p.Active {
				active++
			}
		}
	}
	return out, active
}

func activePrice(t *testing.T, b *synctesting.Bundle, acct, ticket string) stripeclient.Price {
	t.Helper()
	prices, active := pricesOf(b, acct, ticket)
	require.Equal(t, 1, active, "exactly one active Price for ticket %s: %+v", ticket, prices)
	for _, p := range prices {
		if p.Active {
			return p
		}
	}
	panic("unreachable")
}

func TestTicketWorker_lifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(10), ticketID(10)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "95.00")
	b.WaitIdle(t, 10*time.Second)

	p := activePrice(t, b, account, tk)
	require.Equal(t, jobs.ProductID(ev), p.Product)
	require.Equal(t, int64(9500), p.UnitAmount)
	require.Equal(t, "aud", p.Currency)
	require.Equal(t, "Mason", p.Nickname)
	require.Equal(t, jobs.LookupKey(tk), p.LookupKey)
	require.Equal(t, map[string]string{
		"ticket_id": tk, "ticket_name": "Mason", "event_id": ev, "eligibility": `{"rules":["mason"]}`, "total_capacity": "100",
	}, p.Metadata)
	var written string
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT stripe_price_id FROM event_tickets WHERE id = $1`, tk).Scan(&written))
	require.Equal(t, p.ID, written)

	// Name only: the same Price, updated in place.
	b.Exec(t, `UPDATE event_tickets SET name = 'Master Mason' WHERE id = $1`, tk)
	b.WaitIdle(t, 10*time.Second)
	renamed := activePrice(t, b, account, tk)
	require.Equal(t, p.ID, renamed.ID, "a name change must not mint a Price")
	require.Equal(t, "Master Mason", renamed.Nickname)

	// Amount: a new Price, the old archived, one active.
	b.Exec(t, `UPDATE event_tickets SET price = 99.95 WHERE id = $1`, tk)
	b.WaitIdle(t, 10*time.Second)
	repriced := activePrice(t, b, account, tk)
	require.NotEqual(t, p.ID, repriced.ID)
	require.Equal(t, int64(9995), repriced.UnitAmount)
	require.Equal(t, jobs.LookupKey(tk), repriced.LookupKey, "the lookup key moved to the current Price")
	all, _ := pricesOf(b, account, tk)
	require.Len(t, all, 2)

	// Unchanged (enqueued by hand): zero Stripe writes.
	writes := b.Emulator.WriteCount()
	b.Exec(t, `SELECT stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', $1)`, tk)
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, writes, b.Emulator.WriteCount())

	// Delete: the Price archived.
	b.Exec(t, `DELETE FROM event_tickets WHERE id = $1`, tk)
	b.WaitIdle(t, 10*time.Second)
	_, active := pricesOf(b, account, tk)
	require.Zero(t, active)
}

func TestTicketWorker_badPriceIsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(11), ticketID(11)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Refund", "-5.00")
	b.WaitIdle(t, 10*time.Second)
	_, active := pricesOf(b, account, tk)
	require.Zero(t, active)
	logs := syncLog(t, b, tk)
	require.Len(t, logs, 1)
	require.Equal(t, jobs.StatusFailed, logs[0].Status)
	require.Contains(t, *logs[0].Msg, "negative")
	var state string
	require.NoError(t, b.Pool.QueryRow(context.Background(),
		`SELECT state FROM river_job WHERE kind = 'stripe_sync_ticket'`).Scan(&state))
	require.Equal(t, "cancelled", state)
}

func TestTicketWorker_eventDeleteArchivesEverything(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(12)
	insertEvent(t, b, ev, orgID, "Doomed")
	for i := range 5 {
		insertTicket(t, b, ticketID(120+i), ev, fmt.Sprintf("T%d", i), "10.00")
	}
	b.WaitIdle(t, 10*time.Second)
	require.Len(t, b.Emulator.Prices(account), 5)

	b.Emulator.ResetRequests()
	b.Exec(t, `DELETE FROM events WHERE event_id = $1`, ev)
	b.WaitIdle(t, 10*time.Second)
	require.False(t, product(t, b, account, jobs.ProductID(ev)).Active)
	for _, p := range b.Emulator.Prices(account) {
		require.False(t, p.Active, p.ID)
	}
	t.Logf("event delete with 5 tickets: %d Stripe requests, %d writes", len(b.Emulator.Requests()), b.Emulator.WriteCount())
	require.Equal(t, 6, b.Emulator.WriteCount(), "one archive per object, nothing twice")
}

func TestTicketWorker_responseLostOnCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(13), ticketID(13)
	insertEvent(t, b, ev, orgID, "Banquet")
	b.WaitIdle(t, 10*time.Second)
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultResponseLost, Method: "POST", PathPrefix: "/v1/prices", Times: 1})
	insertTicket(t, b, tk, ev, "Guest", "75.50")
	b.WaitIdle(t, 20*time.Second)
	require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultResponseLost])
	all, active := pricesOf(b, account, tk)
	require.Len(t, all, 1, "the retry found the Price the lost response created")
	require.Equal(t, 1, active)
}

func TestTicketWorker_sameTransactionAsEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(14)
	tx, err := b.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Together', true)`, ev, orgID)
	require.NoError(t, err)
	for i := range 50 {
		_, err = tx.Exec(context.Background(), `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, $3, 20)`,
			ticketID(1400+i), ev, fmt.Sprintf("Seat %d", i))
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(context.Background()))
	b.WaitIdle(t, 30*time.Second)

	require.Len(t, b.Emulator.Products(account), 1)
	prices := b.Emulator.Prices(account)
	require.Len(t, prices, 50, "one Price per ticket, no duplicate")
	for _, p := range prices {
		require.Equal(t, jobs.ProductID(ev), p.Product)
		require.True(t, p.Active)
	}
	require.Empty(t, b.Emulator.Overlaps(), "no two writes to one object at once")
}

func TestOrgWorker_accountChange(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(15), ticketID(15)
	insertEvent(t, b, ev, orgID, "Moving")
	insertTicket(t, b, tk, ev, "Mason", "95.00")
	b.WaitIdle(t, 10*time.Second)
	oldPrice := activePrice(t, b, account, tk)

	const newAccount = "acct_1NewAccount"
	b.Exec(t, `UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, orgID, newAccount)
	b.WaitIdle(t, 20*time.Second)

	moved := product(t, b, newAccount, jobs.ProductID(ev))
	require.NotNil(t, moved)
	require.Equal(t, "Moving", moved.Name)
	require.True(t, moved.Active)
	newPrice := activePrice(t, b, newAccount, tk)
	require.Equal(t, oldPrice.UnitAmount, newPrice.UnitAmount)
	require.Equal(t, oldPrice.Nickname, newPrice.Nickname)
	require.Equal(t, oldPrice.Metadata, newPrice.Metadata)
	require.Equal(t, moved.ID, newPrice.Product)

	require.False(t, product(t, b, account, jobs.ProductID(ev)).Active, "old account's Product archived")
	_, active := pricesOf(b, account, tk)
	require.Zero(t, active, "old account's Price archived")
}

// Stripe requests per logical change, for the closing note and the
// benchmarks' expectations: writes are what the targets count.
func TestTicketWorker_requestCounts(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(16)
	measure := func(name string, wantWrites int, change func()) {
		b.Emulator.ResetRequests()
		change()
		b.WaitIdle(t, 10*time.Second)
		t.Logf("%s: %d Stripe requests, %d writes", name, len(b.Emulator.Requests()), b.Emulator.WriteCount())
		require.Equal(t, wantWrites, b.Emulator.WriteCount(), name)
	}
	measure("new event with 5 tickets", 6, func() {
		tx, err := b.Pool.Begin(context.Background())
		require.NoError(t, err)
		_, err = tx.Exec(context.Background(), `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Counted', true)`, ev, orgID)
		require.NoError(t, err)
		for i := range 5 {
			_, err = tx.Exec(context.Background(), `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, $3, 10)`, ticketID(160+i), ev, fmt.Sprintf("T%d", i))
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(context.Background()))
	})
	measure("price change", 2, func() { b.Exec(t, `UPDATE event_tickets SET price = 11 WHERE id = $1`, ticketID(160)) })
	measure("name change", 1, func() { b.Exec(t, `UPDATE event_tickets SET name = 'Renamed' WHERE id = $1`, ticketID(160)) })
	measure("unchanged update", 0, func() {
		b.Exec(t, `SELECT stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', $1)`, ticketID(160))
	})
	measure("event delete with 5 tickets", 6, func() { b.Exec(t, `DELETE FROM events WHERE event_id = $1`, ev) })
}
