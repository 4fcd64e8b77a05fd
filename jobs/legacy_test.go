package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// oldSystem preloads the emulator with what the Edge Function this project
// replaces created for an event and one ticket: a Product with a random id
// and a Price without our lookup key.
func oldSystem(t *testing.T, b *synctesting.Bundle, ev, tk string, amount int64) (productID, priceID string) {
	t.Helper()
	ctx := context.Background()
	call := stripeclient.Call{Account: account}
	p, err := b.Stripe.CreateProduct(ctx, call, stripeclient.ProductParams{Name: "Old name", Active: true,
		Metadata: map[string]string{"event_id": ev}})
	require.NoError(t, err)
	price, err := b.Stripe.CreatePrice(ctx, call, stripeclient.PriceParams{Product: p.ID, Currency: "aud", UnitAmount: amount,
		Nickname: "Old ticket", Active: true, Metadata: map[string]string{"ticket_id": tk}})
	require.NoError(t, err)
	return p.ID, price.ID
}

// The old system's ids (issue 14.4): adopted when they fit, archived when
// replaced, never left on sale beside ours.
func TestTicketWorker_oldSystemIDs(t *testing.T) {
	t.Parallel()

	for _, c := range []struct {
		name   string
		price  string
		adopt  bool
		amount int64
	}{
		{"SameAmountAdopted", "10.00", true, 1000},
		{"OtherAmountReplaced", "12.00", false, 1200},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, synctesting.Options{})
			ev, tk := eventID(90), ticketID(90)
			oldProduct, oldPrice := oldSystem(t, b, ev, tk, 1000)
			b.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published, stripe_product_id)
				VALUES ($1, $2, 'Migrated', true, $3)`, ev, orgID, oldProduct)
			b.Exec(t, `INSERT INTO event_tickets (id, event_id, name, price, stripe_price_id) VALUES ($1, $2, 'Mason', $3::numeric, $4)`,
				tk, ev, c.price, oldPrice)
			b.WaitIdle(t, 10*time.Second)

			require.Len(t, b.Emulator.Products(account), 1, "the old Product is adopted, not duplicated")
			require.Equal(t, "Migrated", product(t, b, account, oldProduct).Name)
			p := activePrice(t, b, account, tk)
			require.Equal(t, c.amount, p.UnitAmount)
			require.Equal(t, jobs.LookupKey(tk), p.LookupKey)
			require.Equal(t, "Mason", p.Nickname)
			if c.adopt {
				require.Equal(t, oldPrice, p.ID, "updated in place and given the lookup key")
			} else {
				require.NotEqual(t, oldPrice, p.ID)
			}
			var written string
			require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT stripe_price_id FROM event_tickets WHERE id = $1`, tk).Scan(&written))
			require.Equal(t, p.ID, written)
		})
	}

	t.Run("EventDeletedBeforeItsFirstSync", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{NoWorker: true})
		ev, tk := eventID(91), ticketID(91)
		oldProduct, _ := oldSystem(t, b, ev, tk, 1000)
		b.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published, stripe_product_id)
			VALUES ($1, $2, 'Migrated', true, $3)`, ev, orgID, oldProduct)
		b.Exec(t, `DELETE FROM events WHERE event_id = $1`, ev)
		b.StartWorker(t)
		b.WaitIdle(t, 10*time.Second)
		require.False(t, product(t, b, account, oldProduct).Active, "the old system's Product is archived")
	})
}
