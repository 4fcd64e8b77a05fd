package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// secretKey is the test key every emulator in the run accepts.
const secretKey = "sk_test_bench_0123456789abcdef"

// orgID and account are the organisation every benchmark event belongs to,
// and its connected Stripe account.
const (
	orgID   = "0a000000-0000-4000-8000-0000000be4c0"
	account = "acct_bench"
)

// syncKinds are the job kinds whose queue depth says whether the sync is
// idle; the periodic resync and prune jobs are left out.
const busySyncJobs = `
	SELECT count(*) FROM river_job
	WHERE kind IN ('stripe_sync_event', 'stripe_sync_ticket', 'stripe_sync_org')
	  AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`

// createOrg inserts the benchmark organisation with its connected account.
func createOrg(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof)
		VALUES ($1, 'Bench Lodge', $2) ON CONFLICT DO NOTHING`, orgID, account)
	if err != nil {
		return fmt.Errorf("create organisation: %w", err)
	}
	return nil
}

// insertEvents inserts n published events of the benchmark organisation in
// one statement. With triggers, each enqueues its sync job (the outbox);
// without, the rows arrive as if they predated the install.
func insertEvents(ctx context.Context, pool *pgxpool.Pool, n int, triggers bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if !triggers {
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
				return fmt.Errorf("turn triggers off: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO events (event_id, organisation_id, title, description, type, slug, event_start, event_end, is_published)
			SELECT gen_random_uuid(), $1, 'Bench event ' || g, 'A benchmark event.', 'meeting', 'bench-' || g,
			       timestamptz '2026-03-01 19:00+11' + g * interval '1 day',
			       timestamptz '2026-03-01 22:00+11' + g * interval '1 day', true
			FROM generate_series(1, $2::int) g`, orgID, n)
		if err != nil {
			return fmt.Errorf("insert %d events: %w", n, err)
		}
		return nil
	})
}

// waitIdle polls until no sync job waits or runs, or timeout passes.
func waitIdle(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var busy int
		if err := pool.QueryRow(ctx, busySyncJobs).Scan(&busy); err != nil {
			return fmt.Errorf("count busy jobs: %w", err)
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sync jobs still busy after %s", busy, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stripeServer is an in-process Stripe emulator behind a real HTTP server,
// and a stripe-go client on it, so every request crosses the same HTTP and
// form-encoding path as against Stripe.
type stripeServer struct {
	emu    *emulator.Emulator
	srv    *httptest.Server
	client *stripeclient.StripeClient
	// created announces each Product the emulator created, by id.
	created *productAnswers
}

// newStripeServer starts an emulator; limiter paces the client (nil: none).
func newStripeServer(limiter stripeclient.Limiter) (*stripeServer, error) {
	s := &stripeServer{
		emu:     emulator.New(emulator.Options{SecretKey: secretKey}),
		created: newProductAnswers("id", true),
	}
	s.srv = httptest.NewServer(s.created.wrap(s.emu))
	var err error
	s.client, err = stripeclient.New(stripeclient.Options{SecretKey: secretKey, APIBase: s.srv.URL, Limiter: limiter})
	if err != nil {
		s.srv.Close()
		return nil, err
	}
	return s, nil
}

func (s *stripeServer) Close() { s.srv.Close() }

// productAnswers notes when the emulator has answered, with success, a POST
// to the Product endpoints whose form field carries a given value, so latency
// is measured to the moment Stripe holds the change.
type productAnswers struct {
	// field is the form field to match: "id" (a create's deterministic id)
	// or "name" (a create's or an update's title).
	field string
	// createsOnly restricts it to POST /v1/products, leaving out updates.
	createsOnly bool

	mu      sync.Mutex
	waiters map[string]chan time.Time
}

func newProductAnswers(field string, createsOnly bool) *productAnswers {
	return &productAnswers{field: field, createsOnly: createsOnly, waiters: map[string]chan time.Time{}}
}

// expect registers interest in value before the change that sends it, and
// returns where the answer's time will arrive.
func (p *productAnswers) expect(value string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.waiters[value] = ch
	p.mu.Unlock()
	return ch
}

func (p *productAnswers) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		matches := r.URL.Path == "/v1/products" || (!p.createsOnly && strings.HasPrefix(r.URL.Path, "/v1/products/"))
		if r.Method != http.MethodPost || !matches {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		at := time.Now()
		if rec.status != http.StatusOK {
			return
		}
		form, _ := url.ParseQuery(string(body))
		value := form.Get(p.field)
		p.mu.Lock()
		ch := p.waiters[value]
		delete(p.waiters, value)
		p.mu.Unlock()
		if ch != nil {
			ch <- at
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
