package pglimiter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// The limits of issue 11's endpoint-limit figure: live Stripe's
// (https://docs.stripe.com/rate-limits), which the limiter is given too.
const (
	workloadGlobalRate   = 100
	workloadEndpointRate = 25
)

// TestLimiter_stripeShapedWorkload is issue 11's endpoint-limit figure: 30
// new events with 5 new tickets each, synced by two worker processes of 10
// workers against an emulator limiting like live Stripe (100 requests/s
// globally, 25/s per endpoint), the limiter at --rate 100 and
// --endpoint-rate 25. Each event sends POST /v1/products; each ticket
// GET /v1/prices (its lookup key) then POST /v1/prices, the request mix of
// the jobs today. At most 1% of requests may be refused, and the sync must
// take at most 10% longer than the floor the limits allow: the busiest
// endpoint's requests / 25 or all requests / 100, whichever is longer.
//
// Time is measured on a shared machine, where other processes only ever make
// a run slower: the bound must be met by the best of three runs, and every
// run must keep to the 1% of 429s. It is not parallel on purpose: the
// package's other tests hammer the same cores.
func TestLimiter_stripeShapedWorkload(t *testing.T) {
	const tries = 3
	best := 0.0
	for try := range tries {
		m := runWorkload(t, 30, 5)
		t.Logf("run %d: %s", try+1, m)
		require.LessOrEqual(t, m.refusedShare(), 0.01, "at most 1%% of requests refused")
		if best == 0 || m.ratio() < best {
			best = m.ratio()
		}
		if best <= 1.10 {
			break
		}
	}
	require.LessOrEqual(t, best, 1.10, "within 10%% of the floor the limits allow")
}

// workloadMeasure is what one run of runWorkload measured.
type workloadMeasure struct {
	total, refused int
	perEndpoint    map[string]int
	elapsed        time.Duration
	// pricePace is the rate POST /v1/prices reached Stripe at.
	pricePace float64
}

func (m workloadMeasure) refusedShare() float64 { return float64(m.refused) / float64(m.total) }

// floor is the least time the limits allow for the requests answered.
func (m workloadMeasure) floor() float64 {
	floor := float64(m.total-m.refused) / workloadGlobalRate
	for _, n := range m.perEndpoint {
		floor = max(floor, float64(n)/workloadEndpointRate)
	}
	return floor
}

func (m workloadMeasure) ratio() float64 { return m.elapsed.Seconds() / m.floor() }

func (m workloadMeasure) String() string {
	return fmt.Sprintf("%d requests %v, %d answered 429 (%.2f%%); synced in %s, floor %.2fs, ratio %.3f; POST /v1/prices paced at %.2f/s",
		m.total, m.perEndpoint, m.refused, 100*m.refusedShare(), m.elapsed.Round(time.Millisecond), m.floor(), m.ratio(), m.pricePace)
}

// runWorkload syncs events with ticketsPerEvent tickets each through the
// stripeclient and two Limiters on a fresh database, and measures it.
func runWorkload(t *testing.T, events, ticketsPerEvent int) workloadMeasure {
	t.Helper()
	const (
		workersPerProcess = 10
		key               = "sk_test_workloadKey123"
	)
	emu := emulator.New(emulator.Options{SecretKey: key})
	emu.SetRateLimit(emulator.RateLimit{Global: workloadGlobalRate, Endpoint: workloadEndpointRate})
	// Stripe answers in tens of milliseconds, not instantly.
	emu.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Latency: 20 * time.Millisecond, LatencyMax: 60 * time.Millisecond})
	srv := httptest.NewServer(emu)
	defer srv.Close()

	pools := pgLimiterPools(t, 2)
	clients := make([]*stripeclient.StripeClient, len(pools))
	for i, pool := range pools {
		c, err := stripeclient.New(stripeclient.Options{SecretKey: key, APIBase: srv.URL,
			Limiter: New(pool, Options{Rate: workloadGlobalRate, EndpointRate: workloadEndpointRate})})
		require.NoError(t, err)
		clients[i] = c
	}

	// A job queue as River would hold it: each event, then its tickets; a
	// ticket waits for its event's Product.
	type job struct{ event, ticket int }
	queue := make(chan job, events*(ticketsPerEvent+1))
	created := make([]chan struct{}, events)
	for e := range events {
		created[e] = make(chan struct{})
		queue <- job{event: e, ticket: -1}
		for tk := range ticketsPerEvent {
			queue <- job{event: e, ticket: tk}
		}
	}
	close(queue)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// retry repeats a request refused with 429 after Stripe's Retry-After,
	// as a snoozed job would.
	retry := func(do func() error) error {
		for {
			err := do()
			var se *stripeclient.Error
			if !errors.As(err, &se) || se.Class != stripeclient.ClassRateLimited {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(max(se.RetryAfter, 100*time.Millisecond)):
			}
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
	)
	start := time.Now()
	for _, c := range clients {
		for range workersPerProcess {
			wg.Go(func() {
				for j := range queue {
					call := stripeclient.Call{Account: "acct_1Load", IdempotencyScope: fmt.Sprintf("e%d:t%d", j.event, j.ticket)}
					productID := fmt.Sprintf("evt_%d", j.event)
					var err error
					if j.ticket < 0 {
						err = retry(func() error {
							_, err := c.CreateProduct(ctx, call, stripeclient.ProductParams{ID: productID, Name: productID, Active: true})
							return err
						})
						close(created[j.event])
					} else {
						<-created[j.event]
						lookupKey := fmt.Sprintf("ticket_%d_%d", j.event, j.ticket)
						err = retry(func() error {
							_, err := c.FindPriceByLookupKey(ctx, call, lookupKey)
							return err
						})
						if err == nil {
							err = retry(func() error {
								_, err := c.CreatePrice(ctx, call, stripeclient.PriceParams{Product: productID, Currency: "aud",
									UnitAmount: 2500, LookupKey: lookupKey, Active: true})
								return err
							})
						}
					}
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	m := workloadMeasure{elapsed: time.Since(start), perEndpoint: map[string]int{}}
	require.Empty(t, failures)
	require.Len(t, emu.Prices("acct_1Load"), events*ticketsPerEvent)

	var priceArrivals []time.Time
	for _, r := range emu.Requests() {
		m.total++
		if r.Status == http.StatusTooManyRequests {
			m.refused++
			continue
		}
		m.perEndpoint[r.Endpoint]++
		if r.Endpoint == "POST /v1/prices" {
			priceArrivals = append(priceArrivals, r.Time)
		}
	}
	slices.SortFunc(priceArrivals, func(a, b time.Time) int { return a.Compare(b) })
	m.pricePace = achievedRate(priceArrivals)
	return m
}
