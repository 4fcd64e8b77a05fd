package worker

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

const testWebhookSecret = "whsec_workerRunWEBHOOK5a4b3c"

func TestNewCmdWorker_webhookFlags(t *testing.T) {
	t.Parallel()
	got, err := cmdtest.Command[Options]{NewCmd: NewCmdWorker}.Parse(t, "--webhook-addr", "127.0.0.1:9465", "--reconcile-every", "0")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9465", got.WebhookAddr)
	require.Zero(t, got.ReconcileEvery)
	_, err = cmdtest.Command[Options]{NewCmd: NewCmdWorker}.Parse(t, "--reconcile-every", "-1s")
	require.EqualError(t, err, "--reconcile-every must not be negative")
}

// The worker's webhook endpoint end to end, as the least-privilege worker
// role: deliveries whose Stripe-Signature does not verify
// (https://docs.stripe.com/webhooks#verify-events) are answered 400 and
// enqueue nothing; a Dashboard edit the emulator signs and sends is repaired
// in seconds; a deauthorisation shows in /metrics.
func TestWorkerRun_webhooks(t *testing.T) {
	t.Parallel()
	db := cmdtest.NewDB(t)
	pool := db.Pool
	emu := emulator.New(emulator.Options{SecretKey: testKey})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)

	f, _, errOut := cmdtest.Command[Options]{DatabaseURL: testdb.WorkerURL(t, db.URL), StripeAPIBase: srv.URL,
		Env: map[string]string{"STRIPE_SECRET_KEY": testKey, "STRIPE_WEBHOOK_SECRET": testWebhookSecret}}.Factory(t, false)
	ready, hooks := make(chan string, 1), make(chan string, 1)
	opts := &Options{Factory: f, Concurrency: 2, MetricsAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		JobTimeout: time.Minute, LogRetention: time.Hour, LogFormat: "json", LogLevel: "debug", Currency: "aud",
		WebhookAddr: "127.0.0.1:0", Ready: func(addr string) { ready <- addr }, WebhookReady: func(addr string) { hooks <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- workerRun(ctx, opts) }()
	var addr, hookAddr string
	for addr == "" || hookAddr == "" {
		select {
		case addr = <-ready:
		case hookAddr = <-hooks:
		case err := <-done:
			t.Fatalf("worker exited before it was ready: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("worker never became ready")
		}
	}
	endpoint := "http://" + hookAddr + WebhookPath
	emu.SetWebhook(endpoint, testWebhookSecret)

	_, err := pool.Exec(context.Background(), `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, testOrg, testAcct)
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Installation', true)`, testEvent, testOrg)
	require.NoError(t, err)
	productID := jobs.ProductID(testEvent)
	waitFor(t, "the event synced", func() bool { return len(emu.Products(testAcct)) == 1 })

	post := func(payload []byte, signature string) int {
		req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(payload))
		require.NoError(t, err)
		req.Header.Set("Stripe-Signature", signature)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	forged := []byte(`{"id": "evt_forged", "object": "event", "account": "` + testAcct + `", "type": "product.updated",
		"request": {"id": "req_1", "idempotency_key": null},
		"data": {"object": {"id": "` + productID + `", "object": "product", "name": "Forged", "active": true, "metadata": {}}}}`)
	require.Equal(t, http.StatusBadRequest, post(forged, emulator.SignWebhook(forged, "whsec_guessed", time.Now())))
	require.Equal(t, http.StatusBadRequest, post(forged, emulator.SignWebhook(forged, testWebhookSecret, time.Now().Add(-stripeclient.WebhookTolerance-time.Second))))
	require.Equal(t, http.StatusBadRequest, post(forged, ""))
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM stripe_sync_webhook_event WHERE event_id = 'evt_forged')
		     + (SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_webhook')`).Scan(&n))
	require.Zero(t, n, "a refused delivery records and enqueues nothing")

	// Stripe may deliver an event twice, each time freshly signed: the
	// second is answered 200 and does nothing.
	replayed := []byte(`{"id": "evt_twice", "object": "event", "account": "` + testAcct + `", "type": "product.updated",
		"request": {"id": "req_2", "idempotency_key": null},
		"data": {"object": {"id": "` + productID + `", "object": "product", "name": "Installation", "active": true, "metadata": {}}}}`)
	require.Equal(t, http.StatusOK, post(replayed, emulator.SignWebhook(replayed, testWebhookSecret, time.Now())))
	require.Equal(t, http.StatusOK, post(replayed, emulator.SignWebhook(replayed, testWebhookSecret, time.Now())))
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_webhook'`).Scan(&n))
	require.Equal(t, 1, n, "one job for an event delivered twice")

	rename := "Installation (edited in the Dashboard)"
	edited := time.Now()
	require.NoError(t, emu.DashboardUpdate(testAcct, productID, emulator.Edit{Name: &rename}))
	waitFor(t, "the Dashboard rename repaired", func() bool { return emu.Products(testAcct)[0].Name == "Installation" })
	t.Logf("Dashboard rename repaired %s after the edit", time.Since(edited))

	emu.Deauthorize(testAcct)
	var m map[string]float64
	waitFor(t, "metrics", func() bool {
		m = scrape(t, addr)
		// The counter moves after the event commits, so its job may have
		// run before it: wait for both.
		return m[`stripe_sync_account_unreachable{account="`+testAcct+`"}`] == 1 &&
			m[`stripe_sync_webhook_events_total{disposition="own_write"}`] >= 1 &&
			m[`stripe_sync_webhook_events_total{disposition="enqueued"}`] >= 3
	})
	require.Equal(t, 3.0, m[`stripe_sync_webhook_events_total{disposition="bad_signature"}`])
	require.Equal(t, 3.0, m[`stripe_sync_webhook_events_total{disposition="enqueued"}`], "the replayed event once, the rename, the deauthorisation")
	require.Equal(t, 1.0, m[`stripe_sync_webhook_events_total{disposition="duplicate"}`])
	require.Contains(t, m, "stripe_sync_reconcile_drift_found")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
	require.NotContains(t, errOut.String(), testWebhookSecret)
	require.NotContains(t, errOut.String(), testKey)
	require.True(t, strings.Contains(errOut.String(), "refused a webhook delivery"))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "not within 10s: %s", what)
		time.Sleep(10 * time.Millisecond)
	}
}
