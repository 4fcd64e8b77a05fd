package jobs_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
)

// Nothing is left on sale by accident (issue 14.5).
func TestEventWorker_nothingLeftOnSale(t *testing.T) {
	t.Parallel()

	t.Run("OrganisationLosesItsAccount", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		ev, tk := eventID(60), ticketID(60)
		insertEvent(t, b, ev, orgID, "Orphaned")
		insertTicket(t, b, tk, ev, "Mason", "10.00")
		b.WaitIdle(t, 10*time.Second)

		b.Exec(t, `UPDATE organisations SET stripe_onbehalfof = NULL WHERE organisation_id = $1`, orgID)
		b.WaitIdle(t, 20*time.Second)
		require.False(t, product(t, b, account, jobs.ProductID(ev)).Active, "archived on the account the organisation left")
		_, active := pricesOf(b, account, tk)
		require.Zero(t, active)
		logs := syncLog(t, b, ev)
		require.Contains(t, *logs[len(logs)-1].Msg, "no connected Stripe account")

		// And back on sale when the account returns.
		b.Exec(t, `UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, orgID, account)
		b.WaitIdle(t, 20*time.Second)
		require.True(t, product(t, b, account, jobs.ProductID(ev)).Active)
		require.Equal(t, int64(1000), activePrice(t, b, account, tk).UnitAmount)
	})

	for _, c := range []struct{ name, price, reason string }{
		{"PriceBecomesNull", "NULL", "null"},
		{"PriceBecomesNegative", "-1", "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, synctesting.Options{})
			ev, tk := eventID(61), ticketID(61)
			insertEvent(t, b, ev, orgID, "Banquet")
			insertTicket(t, b, tk, ev, "Mason", "10.00")
			b.WaitIdle(t, 10*time.Second)

			b.Exec(t, `UPDATE event_tickets SET price = `+c.price+` WHERE id = $1`, tk)
			b.WaitIdle(t, 10*time.Second)
			_, active := pricesOf(b, account, tk)
			require.Zero(t, active, "not on sale at the old amount")
			logs := syncLog(t, b, tk)
			last := logs[len(logs)-1]
			require.Equal(t, jobs.StatusFailed, last.Status)
			require.Contains(t, *last.Msg, c.reason)
			require.Contains(t, *last.Msg, "archived")

			b.Exec(t, `UPDATE event_tickets SET price = 11 WHERE id = $1`, tk)
			b.WaitIdle(t, 10*time.Second)
			require.Equal(t, int64(1100), activePrice(t, b, account, tk).UnitAmount)
		})
	}

	t.Run("UnpublishWithBlankTitle", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		ev := eventID(62)
		insertEvent(t, b, ev, orgID, "Soon blank")
		b.WaitIdle(t, 10*time.Second)

		b.Exec(t, `UPDATE events SET title = NULL, is_published = false WHERE event_id = $1`, ev)
		b.WaitIdle(t, 10*time.Second)
		require.False(t, product(t, b, account, jobs.ProductID(ev)).Active, "an unpublish archives whatever else is wrong")
	})
}
