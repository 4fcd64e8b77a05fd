// Package synctesting boots the pieces an end-to-end sync test needs: a fresh
// database, the Stripe emulator behind an HTTP server, the stripe-go client
// pointed at it, and a started River client with every worker. Tests in
// jobs and cmd share it so they exercise one wiring. It is not called
// synctest, which would shadow the standard library's testing/synctest.
package synctesting

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// SecretKey is the test key the emulator accepts.
const SecretKey = "sk_test_synctest_0123456789"

// Bundle is a running sync against the emulator.
type Bundle struct {
	Pool     *pgxpool.Pool
	Emulator *emulator.Emulator
	APIBase  string
	Stripe   *stripeclient.StripeClient
	River    *river.Client[pgx.Tx]
}

// Options tune Start.
type Options struct {
	// NoWorker builds the bundle without starting River, for tests that
	// enqueue first and work later.
	NoWorker bool
	// Jobs are passed to jobs.NewClient.
	Jobs jobs.Options
	// WrapStripe, when set, wraps the emulator's handler, so a test can see
	// a request arrive before the emulator answers it.
	WrapStripe func(http.Handler) http.Handler
}

// Start boots a bundle for t and stops it when t ends.
func Start(t testing.TB, opts Options) *Bundle {
	t.Helper()
	cfg := testdb.PoolConfig(t, testdb.URL(t))
	var err error
	// A job holds a connection for its whole round (its entity locks); size
	// the pool like the worker does.
	cfg.MaxConns = 20
	b := &Bundle{}
	b.Pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(b.Pool.Close)
	b.Emulator = emulator.New(emulator.Options{SecretKey: SecretKey})
	var handler http.Handler = b.Emulator
	if opts.WrapStripe != nil {
		handler = opts.WrapStripe(handler)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	b.APIBase = srv.URL

	b.Stripe, err = stripeclient.New(stripeclient.Options{SecretKey: SecretKey, APIBase: srv.URL})
	require.NoError(t, err)

	b.River, err = jobs.NewClient(&jobs.Deps{Pool: b.Pool, Stripe: b.Stripe, Logger: Logger(t)}, opts.Jobs)
	require.NoError(t, err)
	if !opts.NoWorker {
		b.StartWorker(t)
	}
	return b
}

// StartWorker starts the River client, stopping it when t ends.
func (b *Bundle) StartWorker(t testing.TB) {
	t.Helper()
	require.NoError(t, b.River.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.River.Stop(ctx)
	})
}

// Logger writes through t.Log at Debug, so a failing test shows the
// worker's story.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// WaitIdle waits until no sync job is waiting or running, failing t after
// timeout.
func (b *Bundle) WaitIdle(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var busy int
		require.NoError(t, b.Pool.QueryRow(context.Background(), `
			SELECT count(*) FROM river_job
			WHERE kind LIKE 'stripe_sync\_%' AND kind <> 'stripe_sync_resync'
			  AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&busy))
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("synctesting: %d sync jobs still busy after %s", busy, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exec runs SQL on the bundle's database, failing t on error.
func (b *Bundle) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}
