package e2e

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/jobs"
)

func TestWorker_sharedRate(t *testing.T) {
	t.Parallel()
	const (
		rate    = 10
		backlog = 300
		org     = "0a000000-0000-4000-8000-000000000030"
		account = "acct_e2e_rate"
	)
	h := newHarness(t, "sk_test_e2e_rate_0123456789")
	h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
	h.exec(`
		INSERT INTO events (event_id, organisation_id, title, is_published)
		SELECT ('0e000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, $1, 'Event ' || n, true
		FROM generate_series(1, $2::int) n`, org, backlog)

	// Each process could do far more than the rate on its own.
	cfg := workerConfig{Rate: rate, Concurrency: 10}
	h.startWorker("worker-1", cfg)
	h.startWorker("worker-2", cfg)
	h.waitIdle(3*backlog/rate*time.Second, false)

	var processes int
	require.NoError(t, h.pool.QueryRow(context.Background(), `
		SELECT count(DISTINCT attempted_by[array_length(attempted_by, 1)]) FROM river_job WHERE kind = 'stripe_sync_event'`).Scan(&processes))
	require.Equal(t, 2, processes, "both workers took jobs")
	s := h.state()
	require.Len(t, s.Accounts[account].Products, backlog)
	require.Equal(t, map[string]int{"completed": backlog}, h.jobStates())
	for _, p := range s.Accounts[account].Products {
		require.Equal(t, jobs.ProductID(p.Metadata["event_id"]), p.ID)
	}

	reqs, err := h.ctl.Requests(context.Background())
	require.NoError(t, err)
	require.Len(t, reqs, backlog, "one create per event, none refused")
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		require.Equal(t, 200, r.Status)
		times[i] = r.Time
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })

	// The most requests any one-second window [t, t+1s) saw.
	busiest, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < time.Second {
			j++
		}
		busiest = max(busiest, j-i)
	}
	span := times[len(times)-1].Sub(times[0])
	achieved := float64(len(times)-1) / span.Seconds()
	t.Logf("%d requests from 2 processes at --rate %d in %s: %.2f/s achieved, busiest second %d",
		len(times), rate, span.Round(time.Millisecond), achieved, busiest)
	// The limiter lets one request go at a time (no burst): rate + 1 allows
	// for the window's two ends.
	require.LessOrEqual(t, busiest, rate+1, "no one-second window above the rate plus one request")
	require.GreaterOrEqual(t, achieved, 0.9*rate, "the shared limit, not the workers, sets the pace")
}
