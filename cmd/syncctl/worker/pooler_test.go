package worker

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// TestWorkerRun_poolers runs the worker, as the least-privilege worker role,
// behind a real PgBouncer (started by .ci/with-pg.sh): in transaction mode
// it refuses to start, exit 2 and a message naming the cause and the fix;
// in session mode it syncs an event end to end.
func TestWorkerRun_poolers(t *testing.T) {
	t.Parallel()

	run := func(t *testing.T, mode string) (*cmdtest.DB, *emulator.Emulator, context.CancelFunc, chan error, chan string) {
		db := cmdtest.NewDB(t)
		w := startWorker(t, testdb.ThroughPgBouncer(t, testdb.WorkerURL(t, db.URL), mode))
		return db, w.emu, w.cancel, w.done, w.ready
	}

	t.Run("TransactionModeRefused", func(t *testing.T) {
		t.Parallel()
		_, _, _, done, ready := run(t, "transaction")
		select {
		case err := <-done:
			require.True(t, errors.Is(err, dbconn.ErrTransactionPooler), "got %v", err)
			require.Equal(t, 2, cmdutil.ExitCode(err))
			require.ErrorContains(t, err, "transaction-mode pooler")
			require.ErrorContains(t, err, "session-mode pooler (Supavisor session mode, port 5432)")
		case <-ready:
			t.Fatal("the worker started behind a transaction-mode pooler")
		case <-time.After(30 * time.Second):
			t.Fatal("the worker neither started nor refused")
		}
	})

	t.Run("SessionModeSyncs", func(t *testing.T) {
		t.Parallel()
		db, emu, cancel, done, ready := run(t, "session")
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("worker exited before it was ready: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("worker never became ready")
		}
		db.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, testOrg, testAcct)
		db.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Installation', true)`, testEvent, testOrg)
		deadline := time.Now().Add(30 * time.Second)
		for len(emu.Products(testAcct)) == 0 {
			require.True(t, time.Now().Before(deadline), "the event never reached Stripe")
			time.Sleep(20 * time.Millisecond)
		}
		var productID string
		for time.Now().Before(deadline) {
			require.NoError(t, db.Pool.QueryRow(context.Background(),
				`SELECT coalesce(stripe_product_id, '') FROM events WHERE event_id = $1`, testEvent).Scan(&productID))
			if productID != "" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, emu.Products(testAcct)[0].ID, productID, "the worker role wrote the id back")
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("worker did not stop")
		}
	})
}

// TestWorkerRun_signedInMemberWrites: on a Supabase-shaped database, a
// signed-in member of an organisation edits its event through the Data API's
// role (authenticated, under row security) and the worker, running as the
// least-privilege worker role, brings Stripe in step.
func TestWorkerRun_signedInMemberWrites(t *testing.T) {
	t.Parallel()
	const member = "0b000000-0000-4000-8000-000000000001"
	db := cmdtest.NewDB(t)
	w := startWorker(t, testdb.WorkerURL(t, db.URL))
	emu, cancel, done, ready := w.emu, w.cancel, w.done, w.ready
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker never became ready")
	}

	db.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, testOrg, testAcct)
	db.Exec(t, `INSERT INTO organisation_members VALUES ($1, $2)`, testOrg, member)
	require.NoError(t, pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			`SET LOCAL ROLE authenticated`,
			`SELECT set_config('request.jwt.claim.sub', '` + member + `', true)`,
			`INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ('` + testEvent + `', '` + testOrg + `', 'Members Night', true)`,
		} {
			if _, err := tx.Exec(context.Background(), stmt); err != nil {
				return err
			}
		}
		return nil
	}))

	deadline := time.Now().Add(30 * time.Second)
	for {
		products := emu.Products(testAcct)
		if len(products) == 1 && products[0].Name == "Members Night" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the member's event never reached Stripe: %+v", products)
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
}

// runningWorker is a workerRun in a goroutine, against an emulator of its own.
type runningWorker struct {
	emu    *emulator.Emulator
	cancel context.CancelFunc
	done   chan error
	ready  chan string
}

// startWorker runs the worker on databaseURL until t ends (or cancel).
func startWorker(t *testing.T, databaseURL string) *runningWorker {
	t.Helper()
	w := &runningWorker{emu: emulator.New(emulator.Options{SecretKey: testKey}), done: make(chan error, 1), ready: make(chan string, 1)}
	srv := httptest.NewServer(w.emu)
	t.Cleanup(srv.Close)
	f, _, _ := cmdtest.Command[Options]{DatabaseURL: databaseURL, StripeAPIBase: srv.URL,
		Env: map[string]string{"STRIPE_SECRET_KEY": testKey}}.Factory(t, false)
	opts := &Options{Factory: f, Concurrency: 2, MetricsAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		JobTimeout: time.Minute, LogRetention: time.Hour, LogFormat: "json", LogLevel: "info", Currency: "aud",
		Ready: func(addr string) { w.ready <- addr }}
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(context.Background())
	t.Cleanup(w.cancel)
	go func() { w.done <- workerRun(ctx, opts) }()
	return w
}
