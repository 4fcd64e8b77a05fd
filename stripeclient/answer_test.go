package stripeclient_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// TestStripeClient_answer runs DESIGN.md's two retry rules against the
// emulator, which keeps Stripe's idempotency rules
// (https://docs.stripe.com/api/idempotent_requests): after a 5xx the key is
// spent, so the retry needs a new salt; after a lost answer the same key
// gets Stripe's stored answer.
func TestStripeClient_answer(t *testing.T) {
	t.Parallel()
	const key = "sk_test_answerKey123"
	ctx := context.Background()

	setup := func(t *testing.T) (*emulator.Emulator, *stripeclient.StripeClient) {
		t.Helper()
		emu := emulator.New(emulator.Options{SecretKey: key})
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		c, err := stripeclient.New(stripeclient.Options{SecretKey: key, APIBase: srv.URL})
		require.NoError(t, err)
		return emu, c
	}
	product := stripeclient.ProductParams{ID: "evt_1", Name: "Event", Active: true}

	t.Run("Stored500NeedsANewKey", func(t *testing.T) {
		t.Parallel()
		emu, c := setup(t)
		emu.AddFault(emulator.Fault{Kind: emulator.FaultError500Stored, Method: "POST", PathPrefix: "/v1/products", Times: 1})
		call := stripeclient.Call{Account: "acct_1", IdempotencyScope: "event:e1:v1"}

		_, err := c.CreateProduct(ctx, call, product)
		var se *stripeclient.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, stripeclient.ClassRetryable, se.Class)
		require.Equal(t, stripeclient.AnswerServerError, se.Answer)
		require.False(t, se.Replayed)
		require.True(t, stripeclient.NeedsNewKey(err))

		// The fault is used up, but the key holds the 500.
		_, err = c.CreateProduct(ctx, call, product)
		require.ErrorAs(t, err, &se)
		require.Equal(t, 500, se.HTTPStatus)
		require.True(t, se.Replayed, "Stripe replays the stored 500")
		require.Contains(t, se.Error(), "500: An unknown error occurred (injected by the Stripe emulator). (replayed)")
		require.True(t, stripeclient.NeedsNewKey(err))

		call.IdempotencySalt = "1"
		got, err := c.CreateProduct(ctx, call, product)
		require.NoError(t, err, "a salted key runs the request afresh")
		require.Equal(t, "evt_1", got.ID)
		require.Len(t, emu.Products("acct_1"), 1)

		keys := map[string]bool{}
		for _, r := range emu.Requests() {
			keys[r.IdempotencyKey] = true
		}
		require.Len(t, keys, 2, "two attempts on the first key, one on the salted key")
	})

	t.Run("LostAnswerKeepsTheKey", func(t *testing.T) {
		t.Parallel()
		emu, c := setup(t)
		call := stripeclient.Call{Account: "acct_1", IdempotencyScope: "ticket:t1:v1"}
		_, err := c.CreateProduct(ctx, call, product)
		require.NoError(t, err)
		emu.AddFault(emulator.Fault{Kind: emulator.FaultResponseLost, Method: "POST", PathPrefix: "/v1/prices", Times: 1})
		price := stripeclient.PriceParams{Product: "evt_1", Currency: "aud", UnitAmount: 2500, LookupKey: "ticket_t1", Active: true}

		_, err = c.CreatePrice(ctx, call, price)
		var se *stripeclient.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, stripeclient.AnswerNone, se.Answer)
		require.False(t, stripeclient.NeedsNewKey(err), "the request may have been applied: keep the key")

		got, err := c.CreatePrice(ctx, call, price)
		require.NoError(t, err)
		prices := emu.Prices("acct_1")
		require.Len(t, prices, 1, "the retry with the same key did not create a second Price")
		require.Equal(t, prices[0].ID, got.ID)
		reqs := emu.Requests()
		require.True(t, reqs[len(reqs)-1].Replayed, "Stripe answered the retry from its store")
	})
}
