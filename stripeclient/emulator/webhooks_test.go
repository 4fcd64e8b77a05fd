package emulator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

const testWebhookSecret = "whsec_emulator_test"

// received collects the events an endpoint got, verified as the worker
// verifies them (stripe-go's webhook package).
type received struct {
	mu     sync.Mutex
	events []*stripeclient.WebhookEvent
	failed int
}

func (r *received) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		ev, err := stripeclient.ParseWebhook(body, req.Header.Get("Stripe-Signature"), testWebhookSecret)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.failed++
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.events = append(r.events, ev)
	})
}

func (r *received) wait(t *testing.T, n int) []*stripeclient.WebhookEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]*stripeclient.WebhookEvent{}, r.events...)
		failed := r.failed
		r.mu.Unlock()
		require.Zero(t, failed, "every delivery verifies")
		if len(got) >= n {
			return got
		}
		require.True(t, time.Now().Before(deadline), "only %d of %d events arrived", len(got), n)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEmulator_webhooks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got received
	hook := httptest.NewServer(got.handler(t))
	t.Cleanup(hook.Close)
	b.emu.SetWebhook(hook.URL, testWebhookSecret)

	// An API write: the event carries the request's idempotency key
	// (https://docs.stripe.com/api/events/object#event_object-request).
	p := productParams("acct_1", "Gala")
	p.ID = stripe.String("prod_gala")
	p.SetIdempotencyKey("stripe-sync:event:e1:v1:create_product:abc")
	_, err := b.sc.Products.New(p)
	require.NoError(t, err)
	events := got.wait(t, 1)
	require.Equal(t, "product.created", events[0].Type)
	require.Equal(t, "acct_1", events[0].Account)
	require.Equal(t, "stripe-sync:event:e1:v1:create_product:abc", events[0].IdempotencyKey)
	require.Equal(t, "Gala", events[0].Product.Name)

	// A Dashboard edit: the object changes, the event has a request but no
	// key of ours.
	name := "Gala (edited)"
	require.NoError(t, b.emu.DashboardUpdate("acct_1", "prod_gala", Edit{Name: &name, Metadata: map[string]string{"x": "1"}}))
	events = got.wait(t, 2)
	require.Equal(t, "product.updated", events[1].Type)
	require.Empty(t, events[1].IdempotencyKey)
	require.NotEmpty(t, events[1].RequestID)
	require.Equal(t, "Gala (edited)", events[1].Product.Name)
	require.Equal(t, "1", events[1].Product.Metadata["x"])
	got1, err := b.sc.Products.Get("prod_gala", &stripe.ProductParams{Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
	require.NoError(t, err)
	require.Equal(t, "Gala (edited)", got1.Name)
	require.Error(t, b.emu.DashboardUpdate("acct_1", "prod_missing", Edit{Name: &name}))

	// Deauthorisation: 403 account_invalid from then on, and the event.
	require.NoError(t, (&Control{BaseURL: b.srv.URL}).Deauthorize(context.Background(), "acct_1"))
	events = got.wait(t, 3)
	require.Equal(t, stripeclient.EventAccountDeauthorized, events[2].Type)
	require.Equal(t, "acct_1", events[2].Account)
	_, err = b.sc.Products.Get("prod_gala", &stripe.ProductParams{Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
	requireStripeError(t, err, http.StatusForbidden, "account_invalid")
	b.createProduct(t, "acct_2", "prod_other", "Unaffected")
	b.emu.Reauthorize("acct_1")
	_, err = b.sc.Products.Get("prod_gala", &stripe.ProductParams{Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
	require.NoError(t, err)

	// The emulator records a delivery once the endpoint has answered.
	got.wait(t, 4)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.emu.WebhookDeliveries()) < 4 {
		require.True(t, time.Now().Before(deadline), "deliveries recorded")
		time.Sleep(5 * time.Millisecond)
	}
	deliveries := b.emu.WebhookDeliveries()
	require.Len(t, deliveries, 4)
	for _, d := range deliveries {
		require.Equal(t, http.StatusOK, d.Status)
		require.Equal(t, 1, d.Attempts)
	}
}

// A delivery the endpoint refuses is retried, as Stripe retries.
func TestEmulator_webhookRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hook.Close)
	require.NoError(t, (&Control{BaseURL: b.srv.URL}).SetWebhook(context.Background(), hook.URL, testWebhookSecret))
	b.createProduct(t, "acct_1", "prod_1", "One")
	deadline := time.Now().Add(5 * time.Second)
	for len(b.emu.WebhookDeliveries()) == 0 {
		require.True(t, time.Now().Before(deadline))
		time.Sleep(5 * time.Millisecond)
	}
	d := b.emu.WebhookDeliveries()[0]
	require.Equal(t, http.StatusOK, d.Status)
	require.Equal(t, 2, d.Attempts)
}
