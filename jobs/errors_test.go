package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
	"github.com/lodgetix/stripe-sync/stripeclient/pglimiter"
)

// eventJob is the river_job row of an event's sync job.
type eventJob struct {
	State    string
	Attempt  int
	Errors   []string
	Snoozes  int
	Attempts []int // stripe_sync_log.attempt, oldest first
}

func loadEventJob(t *testing.T, b *synctesting.Bundle, id string) eventJob {
	t.Helper()
	var (
		j        eventJob
		errs     [][]byte
		metadata []byte
	)
	require.NoError(t, b.Pool.QueryRow(context.Background(), `
		SELECT state, attempt, coalesce(errors, '{}'), metadata FROM river_job
		WHERE kind = 'stripe_sync_event' AND args->>'event_id' = $1
		ORDER BY id DESC LIMIT 1`, id).Scan(&j.State, &j.Attempt, &errs, &metadata))
	for _, e := range errs {
		var attemptErr struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(e, &attemptErr))
		j.Errors = append(j.Errors, attemptErr.Error)
	}
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	require.NoError(t, json.Unmarshal(metadata, &m))
	j.Snoozes = m.Snoozes
	rows, err := b.Pool.Query(context.Background(),
		`SELECT attempt FROM stripe_sync_log WHERE entity_id = $1 ORDER BY created_at, id`, id)
	require.NoError(t, err)
	j.Attempts, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return j
}

func statuses(logs []logRow) []string {
	out := []string{}
	for _, l := range logs {
		out = append(out, l.Status)
	}
	return out
}

// DESIGN.md's error table, one row per subtest.
func TestEventWorker_stripeErrors(t *testing.T) {
	t.Parallel()

	t.Run("RateLimitedSnoozesWithoutUsingAnAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultRateLimit, Method: "POST", PathPrefix: "/v1/products",
			Times: 2, RetryAfter: time.Second})
		id := eventID(1)
		insertEvent(t, b, id, orgID, "Throttled")
		b.WaitIdle(t, 20*time.Second)

		require.Equal(t, 2, b.Emulator.FaultsInjected()[emulator.FaultRateLimit], "Stripe answered 429 twice")
		require.NotNil(t, product(t, b, account, jobs.ProductID(id)), "the entity synced afterwards")
		j := loadEventJob(t, b, id)
		require.Equal(t, "completed", j.State)
		require.Equal(t, 1, j.Attempt, "two 429s used up no attempt")
		require.Equal(t, 2, j.Snoozes, "each 429 was a snooze, counted towards MaxSnoozes")
		require.Empty(t, j.Errors, "a snooze is not a failed attempt")
		require.Equal(t, []int{1, 1, 1}, j.Attempts, "every round, logged, ran as attempt 1")
		logs := syncLog(t, b, id)
		require.Equal(t, []string{jobs.StatusFailed, jobs.StatusFailed, jobs.StatusSuccess}, statuses(logs))
		require.Contains(t, *logs[0].Msg, "429")
	})

	t.Run("ServerErrorRetriedThenSucceeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultError500, Method: "POST", PathPrefix: "/v1/products", Times: 1})
		id := eventID(2)
		insertEvent(t, b, id, orgID, "Flaky")
		b.WaitIdle(t, 20*time.Second)

		require.Equal(t, 1, b.Emulator.FaultsInjected()[emulator.FaultError500])
		require.Len(t, b.Emulator.Products(account), 1)
		j := loadEventJob(t, b, id)
		require.Equal(t, "completed", j.State)
		require.Equal(t, 2, j.Attempt, "the 500 used an attempt; River's backoff retried it")
		require.Len(t, j.Errors, 1)
		require.Contains(t, j.Errors[0], "500")
		require.Equal(t, []int{1, 2}, j.Attempts)
		require.Equal(t, []string{jobs.StatusFailed, jobs.StatusSuccess}, statuses(syncLog(t, b, id)))
	})

	t.Run("InvalidIsCancelled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		id, other := eventID(3), eventID(4)
		// The mapping passes the event's type through to metadata, and
		// Stripe caps metadata values at 500 characters: Stripe answers 400.
		b.Exec(t, `
			INSERT INTO events (event_id, organisation_id, title, type, is_published)
			VALUES ($1, $2, 'Bad type', $3, true)`, id, orgID, strings.Repeat("t", 501))
		insertEvent(t, b, other, orgID, "Fine")
		b.WaitIdle(t, 20*time.Second)

		j := loadEventJob(t, b, id)
		require.Equal(t, "cancelled", j.State, "no retry: the same data would fail the same way")
		require.Equal(t, 1, j.Attempt)
		require.Nil(t, product(t, b, account, jobs.ProductID(id)))
		logs := syncLog(t, b, id)
		require.Equal(t, jobs.StatusFailed, logs[len(logs)-1].Status)
		require.Contains(t, *logs[len(logs)-1].Msg, "metadata values can be a maximum of 500 characters", "Stripe's own message is logged")
		require.NotNil(t, product(t, b, account, jobs.ProductID(other)), "other entities keep syncing")
	})

	t.Run("AuthErrorRetriedAndLoud", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{NoWorker: true})
		const wrongKey = "sk_test_wrongKEY4242424242"
		badStripe, err := stripeclient.New(stripeclient.Options{SecretKey: wrongKey, APIBase: b.APIBase})
		require.NoError(t, err)
		logs := &lockedBuffer{}
		logger := slogJSON(logs)
		bad, err := jobs.NewClient(&jobs.Deps{Pool: b.Pool, Stripe: badStripe, Logger: logger}, jobs.Options{})
		require.NoError(t, err)
		require.NoError(t, bad.Start(context.Background()))

		id := eventID(5)
		insertEvent(t, b, id, orgID, "Misconfigured")
		deadline := time.Now().Add(20 * time.Second)
		for len(loadEventJob(t, b, id).Errors) == 0 {
			require.True(t, time.Now().Before(deadline), "the job never failed its first attempt")
			time.Sleep(10 * time.Millisecond)
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, bad.Stop(stopCtx))

		j := loadEventJob(t, b, id)
		require.Contains(t, []string{"available", "retryable"}, j.State, "retried, not cancelled: an operator must fix the key")
		for _, e := range j.Errors {
			require.Contains(t, e, "401")
		}
		require.Len(t, syncLog(t, b, id), len(j.Errors), "one failed log row per attempt")
		for _, l := range syncLog(t, b, id) {
			require.Equal(t, jobs.StatusFailed, l.Status)
		}
		line := findLogLine(t, logs.String(), "ERROR", "stripe rejected our credentials")
		require.Equal(t, "stripe_sync_event", line["kind"])
		require.Equal(t, id, line["entity_id"])
		require.Equal(t, account, line["account"])
		require.NotZero(t, line["job_id"])
		require.NotContains(t, logs.String(), wrongKey)

		// Once an operator fixes the key, the retry syncs it.
		b.StartWorker(t)
		b.WaitIdle(t, 20*time.Second)
		require.NotNil(t, product(t, b, account, jobs.ProductID(id)))
		require.Equal(t, "completed", loadEventJob(t, b, id).State)
	})

	t.Run("MissingKnownObjectIsRecreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		id := eventID(6)
		insertEvent(t, b, id, orgID, "Before")
		b.WaitIdle(t, 10*time.Second)
		require.NotNil(t, product(t, b, account, jobs.ProductID(id)))

		// Someone deleted the Product on Stripe's side.
		b.Emulator.Reset()
		b.Exec(t, `UPDATE events SET title = 'After' WHERE event_id = $1`, id)
		b.WaitIdle(t, 10*time.Second)

		p := product(t, b, account, jobs.ProductID(id))
		require.NotNil(t, p, "recreated under its deterministic id")
		require.Equal(t, "After", p.Name)
		require.Len(t, b.Emulator.Products(account), 1)
		logs := syncLog(t, b, id)
		last := logs[len(logs)-1]
		require.Equal(t, jobs.StatusSuccess, last.Status, "resource_missing is not an error")
		require.Equal(t, jobs.ActionCreate, last.Action)
	})

	t.Run("AlreadyExistingObjectIsAdopted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, synctesting.Options{})
		id := eventID(7)
		// A Product with the event's id exists, though nothing recorded it
		// (say, created by an attempt whose database write was lost).
		_, err := b.Stripe.CreateProduct(context.Background(), stripeclient.Call{Account: account},
			stripeclient.ProductParams{ID: jobs.ProductID(id), Name: "Stale", Active: true})
		require.NoError(t, err)

		insertEvent(t, b, id, orgID, "Adopted")
		b.WaitIdle(t, 10*time.Second)

		require.Len(t, b.Emulator.Products(account), 1, "no duplicate")
		p := product(t, b, account, jobs.ProductID(id))
		require.Equal(t, "Adopted", p.Name, "the existing Product now matches the row")
		logs := syncLog(t, b, id)
		require.Equal(t, []string{jobs.StatusSuccess}, statuses(logs), "resource_already_exists is not an error")
		require.Equal(t, jobs.ActionUpdate, logs[0].Action)
	})
}

// A 429 reaches the shared limiter too: the bucket is pushed past Stripe's
// Retry-After, so every worker process backs off, not only the refused job.
func TestEventWorker_rateLimitBacksOffSharedLimiter(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{NoWorker: true})
	var (
		mu     sync.Mutex
		waited []time.Duration
	)
	limiter := pglimiter.New(b.Pool, pglimiter.Options{Rate: 100, OnWait: func(d time.Duration) {
		mu.Lock()
		waited = append(waited, d)
		mu.Unlock()
	}})
	sc, err := stripeclient.New(stripeclient.Options{SecretKey: synctesting.SecretKey, APIBase: b.APIBase, Limiter: limiter})
	require.NoError(t, err)
	client, err := jobs.NewClient(&jobs.Deps{Pool: b.Pool, Stripe: sc, Logger: synctesting.Logger(t)}, jobs.Options{})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})

	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultRateLimit, Method: "POST", PathPrefix: "/v1/products",
		Times: 1, RetryAfter: 2 * time.Second})
	refused, other := eventID(8), eventID(9)
	insertEvent(t, b, refused, orgID, "Refused")
	deadline := time.Now().Add(10 * time.Second)
	for b.Emulator.FaultsInjected()[emulator.FaultRateLimit] == 0 {
		require.True(t, time.Now().Before(deadline), "no 429 yet")
		time.Sleep(5 * time.Millisecond)
	}
	// Another entity's request, made during the Retry-After, waits too.
	insertEvent(t, b, other, orgID, "Held back")
	b.WaitIdle(t, 20*time.Second)

	require.NotNil(t, product(t, b, account, jobs.ProductID(refused)))
	require.NotNil(t, product(t, b, account, jobs.ProductID(other)))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, waited, 3, "three requests: the refused one, the other's, the retry")
	require.Zero(t, waited[0])
	require.Greater(t, waited[1], time.Second, "the other entity's request waited out the penalty")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// findLogLine returns the first JSON log line at level whose message
// contains msg.
func findLogLine(t *testing.T, logs, level, msg string) map[string]any {
	t.Helper()
	for line := range strings.Lines(logs) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["level"] == level && strings.Contains(m["msg"].(string), msg) {
			return m
		}
	}
	t.Fatalf("no %s line %q in:\n%s", level, msg, logs)
	return nil
}

func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
