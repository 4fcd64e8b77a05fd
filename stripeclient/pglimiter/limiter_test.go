package pglimiter

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// pgLimiterPools opens n pools on one fresh database: each stands for a
// worker process of its own.
func pgLimiterPools(t *testing.T, n int) []*pgxpool.Pool {
	t.Helper()
	url := testdb.URL(t)
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		pools[i] = testdb.Pool(t, url)
	}
	return pools
}

// hammer calls Wait for every request on every limiter from several
// goroutines until ctx's deadline, and returns the admission times by
// request.
func hammer(ctx context.Context, t *testing.T, limiters []*Limiter, reqs []stripeclient.Request) map[stripeclient.Request][]time.Time {
	t.Helper()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		admitted = map[stripeclient.Request][]time.Time{}
		failures []error
	)
	for _, l := range limiters {
		for _, req := range reqs {
			for range 4 {
				wg.Go(func() {
					for {
						err := l.Wait(ctx, req)
						now := time.Now()
						mu.Lock()
						if err != nil {
							if ctx.Err() == nil && !isDeadline(err) {
								failures = append(failures, err)
							}
							mu.Unlock()
							return
						}
						admitted[req] = append(admitted[req], now)
						mu.Unlock()
					}
				})
			}
		}
	}
	wg.Wait()
	require.Empty(t, failures)
	for _, times := range admitted {
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	}
	return admitted
}

// onAccounts returns a request on each account.
func onAccounts(accounts ...string) []stripeclient.Request {
	var out []stripeclient.Request
	for _, a := range accounts {
		out = append(out, stripeclient.Request{Account: a})
	}
	return out
}

func isDeadline(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
}

// busiestSecond is the most admissions any closed one-second window holds.
func busiestSecond(times []time.Time) int {
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) <= time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// achievedRate is admissions per second from the first to the last.
func achievedRate(times []time.Time) float64 {
	if len(times) < 2 {
		return 0
	}
	return float64(len(times)-1) / times[len(times)-1].Sub(times[0]).Seconds()
}

func TestLimiter_Wait(t *testing.T) {
	t.Parallel()

	t.Run("SharedByTwoProcesses", func(t *testing.T) {
		t.Parallel()
		const rate = 10
		pools := pgLimiterPools(t, 2)
		limiters := []*Limiter{
			New(pools[0], Options{Rate: rate}),
			New(pools[1], Options{Rate: rate}),
		}
		const burst = 1

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		times := hammer(ctx, t, limiters, onAccounts("acct_1Shared"))[stripeclient.Request{Account: "acct_1Shared"}]

		got := achievedRate(times)
		t.Logf("two limiters at --rate %d (burst %d): %d admissions, busiest second %d, achieved %.2f/s",
			rate, burst, len(times), busiestSecond(times), got)
		require.LessOrEqual(t, busiestSecond(times), rate+burst, "no one-second window above the rate plus the burst")
		require.GreaterOrEqual(t, got, 9.0, "the limit is the throughput, not far below it")
	})

	t.Run("BothProcessesAreServed", func(t *testing.T) {
		t.Parallel()
		pools := pgLimiterPools(t, 2)
		var mu sync.Mutex
		served := map[int]int{}
		limiters := make([]*Limiter, 2)
		for i, pool := range pools {
			limiters[i] = New(pool, Options{Rate: 20, OnWait: func(time.Duration) {
				mu.Lock()
				served[i]++
				mu.Unlock()
			}})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		times := hammer(ctx, t, limiters, onAccounts(""))[stripeclient.Request{}]
		require.Equal(t, len(times), served[0]+served[1], "OnWait reports every admission")
		require.Positive(t, served[0], "the first process got slots")
		require.Positive(t, served[1], "the second process got slots")
	})

	t.Run("PerAccount", func(t *testing.T) {
		t.Parallel()
		const accountRate = 5
		pools := pgLimiterPools(t, 2)
		// The global rate is above both accounts' together, but not by much:
		// one account's backlog must not slow the other.
		opts := Options{Rate: 20, AccountRate: accountRate}
		limiters := []*Limiter{New(pools[0], opts), New(pools[1], opts)}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		admitted := hammer(ctx, t, limiters, onAccounts("acct_1A", "acct_1B"))
		const burst = 1
		for _, account := range []string{"acct_1A", "acct_1B"} {
			times := admitted[stripeclient.Request{Account: account}]
			t.Logf("%s: %d admissions, busiest second %d, achieved %.2f/s", account, len(times), busiestSecond(times), achievedRate(times))
			require.LessOrEqual(t, busiestSecond(times), accountRate+burst, "%s held to its own limit", account)
			require.GreaterOrEqual(t, achievedRate(times), 0.8*accountRate,
				"%s gets its own limit while the other account is saturated", account)
		}

		// Both accounts' buckets are still full of reservations: requests on
		// the platform account take none of them.
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		platform := len(hammer(ctx, t, limiters[:1], onAccounts(""))[stripeclient.Request{}])
		t.Logf("platform account: %d admissions in 1 s", platform)
		require.Greater(t, platform, 3*accountRate, "requests on the platform account are not held to a connected account's limit")
	})

	// Stripe limits each endpoint besides the global limit
	// (https://docs.stripe.com/rate-limits); both are booked in one call.
	t.Run("PerEndpoint", func(t *testing.T) {
		t.Parallel()
		const (
			rate         = 30
			endpointRate = 10
		)
		pools := pgLimiterPools(t, 2)
		opts := Options{Rate: rate, EndpointRate: endpointRate}
		limiters := []*Limiter{New(pools[0], opts), New(pools[1], opts)}
		create := stripeclient.Request{Account: "acct_1", Endpoint: "POST /v1/prices"}
		update := stripeclient.Request{Account: "acct_2", Endpoint: "POST /v1/prices/{id}", Object: "price_1"}
		list := stripeclient.Request{Account: "acct_1", Endpoint: "GET /v1/prices"}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		admitted := hammer(ctx, t, limiters, []stripeclient.Request{create, update, list})
		var all []time.Time
		for _, req := range []stripeclient.Request{create, update, list} {
			times := admitted[req]
			all = append(all, times...)
			t.Logf("%s: %d admissions, busiest second %d, achieved %.2f/s", req.Endpoint, len(times), busiestSecond(times), achievedRate(times))
			require.LessOrEqual(t, busiestSecond(times), endpointRate+1, "%s held to its endpoint's limit", req.Endpoint)
			require.GreaterOrEqual(t, achievedRate(times), 0.85*endpointRate,
				"%s gets its endpoint's limit while the other endpoints are saturated", req.Endpoint)
		}
		slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
		require.LessOrEqual(t, busiestSecond(all), rate+1, "the endpoints together stay within the global limit")
	})

	t.Run("PacedWithMargin", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		l := New(pool, Options{Rate: 2})
		// Reserve two slots as Wait does, without waiting for them.
		b := l.buckets(stripeclient.Request{})
		take := func() time.Time {
			var (
				admitted bool
				tat      time.Time
			)
			require.NoError(t, pool.QueryRow(context.Background(), `SELECT admitted FROM stripe_sync_rate_take($1, $2, $3, $4, 'Infinity')`,
				b.names, b.perSecond, b.burst, b.maxLead).Scan(&admitted))
			require.True(t, admitted)
			require.NoError(t, pool.QueryRow(context.Background(),
				`SELECT tat FROM stripe_sync_rate_limit WHERE bucket = 'global'`).Scan(&tat))
			return tat
		}
		first := take()
		// The second take comes well within the first's 0.515 s, so its slot
		// is exactly one emission interval after the first's.
		interval := take().Sub(first)
		require.InDelta(t, (time.Second+jitterMargin).Seconds()/2, interval.Seconds(), 2e-6,
			"at --rate 2, requests a second apart fill Stripe's window to the brim; 1.03 s leaves room for jitter")
	})

	t.Run("LateWakeTakesAnotherSlot", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		l := New(pool, Options{Rate: 5})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}), "the first slot is free")
		wakes := 0
		l.afterWake = func() {
			wakes++
			if wakes == 1 {
				time.Sleep(3 * lateTolerance) // the process stalls
			}
		}
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}))
		require.GreaterOrEqual(t, wakes, 2, "the booked slot woken for late was given up for the next one")
	})

	t.Run("StarvedProcessStillSends", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		// Slots 206 ms apart: each stall ends before the next slot, which
		// is therefore booked ahead.
		l := New(pool, Options{Rate: 5})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}))
		wakes := 0
		l.afterWake = func() {
			wakes++
			time.Sleep(3 * lateTolerance)
		}
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}))
		require.Equal(t, maxRetakes+1, wakes, "late every time, it gives up maxRetakes slots, then sends")
	})

	t.Run("NoLimit", func(t *testing.T) {
		t.Parallel()
		// No rate means no bucket, hence no query: a nil pool would panic.
		l := New(nil, Options{})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{Account: "acct_1"}))
	})

	t.Run("DeadlineTooSoon", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		l := New(pool, Options{Rate: 1})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}), "the first token is free")

		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := l.Wait(ctx, stripeclient.Request{})
		require.ErrorIs(t, err, context.DeadlineExceeded, "the next slot is a second away")

		var secondsAhead float64
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT extract(epoch FROM tat - clock_timestamp()) FROM stripe_sync_rate_limit WHERE bucket = 'global'`).Scan(&secondsAhead))
		require.Less(t, secondsAhead, 1.5, "a refused Wait reserves nothing: one slot (1.02 s) ahead, not two")
	})

	t.Run("CancelledWhileWaiting", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		l := New(pool, Options{Rate: 0.5})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}))
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- l.Wait(ctx, stripeclient.Request{}) }()
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
	})
}

func TestLimiter_Penalize(t *testing.T) {
	t.Parallel()

	t.Run("Global", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		var (
			mu     sync.Mutex
			waited []time.Duration
		)
		l := New(pool, Options{Rate: 10, OnWait: func(d time.Duration) {
			mu.Lock()
			waited = append(waited, d)
			mu.Unlock()
		}})
		l.Penalize(stripeclient.RateLimited{Request: stripeclient.Request{Account: "acct_1P"}, RetryAfter: time.Second})
		var wg sync.WaitGroup
		for _, account := range []string{"acct_1P", "acct_1Other", "acct_1Other", ""} {
			wg.Go(func() { require.NoError(t, l.Wait(context.Background(), stripeclient.Request{Account: account})) })
		}
		wg.Wait()
		require.Len(t, waited, 4)
		for _, d := range waited {
			// Without an account rate the whole limit backs off, and resumes
			// one request at a time, not with a burst.
			require.Greater(t, d, 800*time.Millisecond, "nothing is admitted during Stripe's Retry-After")
		}
	})

	t.Run("PerAccount", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		var waited []time.Duration
		l := New(pool, Options{Rate: 100, AccountRate: 10,
			OnWait: func(d time.Duration) { waited = append(waited, d) }})
		l.Penalize(stripeclient.RateLimited{Request: stripeclient.Request{Account: "acct_1P"}, RetryAfter: time.Second})
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{Account: "acct_1Other"}))
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{Account: "acct_1P"}))
		require.Equal(t, time.Duration(0), waited[0], "another account is not held back")
		require.Greater(t, waited[1], 500*time.Millisecond, "the refused account waits")
	})

	t.Run("PenaltiesDoNotAddUp", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		var waited []time.Duration
		l := New(pool, Options{Rate: 100, OnWait: func(d time.Duration) { waited = append(waited, d) }})
		for range 5 {
			l.Penalize(stripeclient.RateLimited{RetryAfter: time.Second})
		}
		require.NoError(t, l.Wait(context.Background(), stripeclient.Request{}))
		require.Less(t, waited[0], 1100*time.Millisecond, "five 429s at once pause for one Retry-After, not five")
	})

	t.Run("EchoesDoNotRestartThePause", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		l := New(pool, Options{Rate: 100})
		type pause struct{ from, until, tat time.Time }
		read := func() pause {
			var p pause
			require.NoError(t, pool.QueryRow(context.Background(),
				`SELECT paused_from, paused_until, tat FROM stripe_sync_rate_limit WHERE bucket = 'global'`).Scan(&p.from, &p.until, &p.tat))
			return p
		}

		l.Penalize(stripeclient.RateLimited{RetryAfter: time.Second})
		first := read()
		require.Equal(t, time.Second, first.until.Sub(first.from))
		require.Equal(t, first.until, first.tat, "the first slot after the pause is its end, no burst")

		// Requests admitted before the pause are still arriving at Stripe
		// and being refused: each is the same overload, not a new one.
		l.Penalize(stripeclient.RateLimited{RetryAfter: time.Second})
		l.Penalize(stripeclient.RateLimited{Request: stripeclient.Request{Account: "acct_1Other"}, RetryAfter: time.Second})
		require.Equal(t, first, read(), "a 429 during the pause does not restart it")

		l.Penalize(stripeclient.RateLimited{RetryAfter: 3 * time.Second})
		longer := read()
		require.Equal(t, first.from, longer.from)
		require.Equal(t, 3*time.Second, longer.until.Sub(longer.from), "a longer Retry-After is honoured from the pause's start")

		// A pause of a microsecond is over by the next round trip: the next
		// 429 is news, and starts a pause of its own.
		l2 := New(pgLimiterPools(t, 1)[0], Options{Rate: 100})
		l2.Penalize(stripeclient.RateLimited{RetryAfter: time.Microsecond})
		l2.Penalize(stripeclient.RateLimited{RetryAfter: time.Second})
		var length time.Duration
		require.NoError(t, l2.pool.QueryRow(context.Background(),
			`SELECT paused_until - paused_from FROM stripe_sync_rate_limit WHERE bucket = 'global'`).Scan(&length))
		require.Equal(t, time.Second, length, "a 429 after the pause ended starts a new one")
	})
}

// penalizingLimiter records what the transport tells it.
type penalizingLimiter struct {
	mu        sync.Mutex
	penalties []string
}

func (l *penalizingLimiter) Wait(context.Context, stripeclient.Request) error { return nil }

func (l *penalizingLimiter) Penalize(rl stripeclient.RateLimited) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.penalties = append(l.penalties, fmt.Sprintf("%s %s %q %s", rl.Account, rl.Endpoint, rl.Reason, rl.RetryAfter))
}

// testKey is the secret key the emulator in these tests accepts.
const testKey = "sk_test_pglimiterKey123"

func TestLimiter_penalizedByStripeClientOn429(t *testing.T) {
	t.Parallel()

	t.Run("RetryAfterPassedOn", func(t *testing.T) {
		t.Parallel()
		emu := emulator.New(emulator.Options{SecretKey: testKey})
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		limiter := &penalizingLimiter{}
		c, err := stripeclient.New(stripeclient.Options{SecretKey: testKey, APIBase: srv.URL, Limiter: limiter})
		require.NoError(t, err)

		emu.AddFault(emulator.Fault{Kind: emulator.FaultRateLimit, Times: 1, RetryAfter: 2 * time.Second})
		_, err = c.GetProduct(context.Background(), stripeclient.Call{Account: "acct_1R"}, "prod_x")
		require.True(t, stripeclient.IsClass(err, stripeclient.ClassRateLimited), "got %v", err)
		_, err = c.GetProduct(context.Background(), stripeclient.Call{Account: "acct_1R"}, "prod_x")
		require.True(t, stripeclient.IsClass(err, stripeclient.ClassNotFound), "got %v", err)
		require.Equal(t, []string{`acct_1R GET /v1/products/{id} "" 2s`}, limiter.penalties,
			"one 429, one penalty of Stripe's Retry-After")
	})

	t.Run("PostgresBucketPushed", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		emu := emulator.New(emulator.Options{SecretKey: testKey})
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		c, err := stripeclient.New(stripeclient.Options{SecretKey: testKey, APIBase: srv.URL,
			Limiter: New(pool, Options{Rate: 100})})
		require.NoError(t, err)

		emu.AddFault(emulator.Fault{Kind: emulator.FaultRateLimit, Times: 1, RetryAfter: 3 * time.Second})
		_, err = c.GetProduct(context.Background(), stripeclient.Call{Account: "acct_1R"}, "prod_x")
		require.True(t, stripeclient.IsClass(err, stripeclient.ClassRateLimited), "got %v", err)
		var ahead float64
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT extract(epoch FROM tat - clock_timestamp()) FROM stripe_sync_rate_limit WHERE bucket = 'global'`).Scan(&ahead))
		require.Greater(t, ahead, 2.0, "the shared bucket admits nothing for Retry-After")
	})

	// https://docs.stripe.com/rate-limits: a 429 with
	// Stripe-Rate-Limited-Reason: endpoint-rate is that endpoint's limit.
	t.Run("EndpointRatePausesOnlyTheEndpoint", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		emu := emulator.New(emulator.Options{SecretKey: testKey})
		emu.SetRateLimit(emulator.RateLimit{Endpoint: 1})
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		c, err := stripeclient.New(stripeclient.Options{SecretKey: testKey, APIBase: srv.URL,
			Limiter: New(pool, Options{Rate: 100, EndpointRate: 25})})
		require.NoError(t, err)

		call := stripeclient.Call{Account: "acct_1R"}
		_, err = c.GetProduct(context.Background(), call, "prod_x")
		require.True(t, stripeclient.IsClass(err, stripeclient.ClassNotFound), "got %v", err)
		_, err = c.GetProduct(context.Background(), call, "prod_y")
		var se *stripeclient.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, stripeclient.ClassRateLimited, se.Class)
		require.Equal(t, "endpoint-rate", se.RateLimitedReason)

		paused := map[string]bool{}
		rows, err := pool.Query(context.Background(),
			`SELECT bucket, coalesce(paused_until > clock_timestamp(), false) FROM stripe_sync_rate_limit`)
		require.NoError(t, err)
		for rows.Next() {
			var (
				bucket string
				p      bool
			)
			require.NoError(t, rows.Scan(&bucket, &p))
			paused[bucket] = p
		}
		require.NoError(t, rows.Err())
		require.Equal(t, map[string]bool{GlobalBucket: false, EndpointBucket("GET /v1/products/{id}"): true}, paused,
			"the endpoint's bucket is paused, the global one is not")
	})

	// https://docs.stripe.com/error-codes#lock-timeout: another request held
	// the object. Only writes to that object wait.
	t.Run("LockTimeoutHoldsOnlyTheObject", func(t *testing.T) {
		t.Parallel()
		pool := pgLimiterPools(t, 1)[0]
		emu := emulator.New(emulator.Options{SecretKey: testKey})
		srv := httptest.NewServer(emu)
		t.Cleanup(srv.Close)
		l := New(pool, Options{Rate: 100, EndpointRate: 25})
		c, err := stripeclient.New(stripeclient.Options{SecretKey: testKey, APIBase: srv.URL, Limiter: l})
		require.NoError(t, err)
		call := stripeclient.Call{Account: "acct_1L"}
		for _, id := range []string{"prod_a", "prod_b"} {
			_, err := c.CreateProduct(context.Background(), call, stripeclient.ProductParams{ID: id, Name: id, Active: true})
			require.NoError(t, err)
		}

		emu.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/products/prod_a",
			Latency: time.Minute, Times: 1})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.ArchiveProduct(ctx, call, "prod_a")
			done <- err
		}()
		require.Eventually(t, func() bool { return emu.FaultsInjected()[emulator.FaultLatency] == 1 },
			5*time.Second, 5*time.Millisecond)
		_, err = c.UpdateProduct(context.Background(), call, "prod_a", stripeclient.ProductParams{Name: "again", Active: true})
		var se *stripeclient.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, stripeclient.ClassRateLimited, se.Class)
		require.Equal(t, stripeclient.ReasonLockTimeout, se.RateLimitedReason)
		cancel()
		require.Error(t, <-done)

		short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancelShort()
		err = l.Wait(short, stripeclient.Request{Account: "acct_1L", Endpoint: "POST /v1/products/{id}", Object: "prod_a"})
		require.ErrorIs(t, err, context.DeadlineExceeded, "prod_a is held for Stripe's second")
		require.NoError(t, l.Wait(short, stripeclient.Request{Account: "acct_1L", Endpoint: "POST /v1/products/{id}", Object: "prod_b"}),
			"another object of the same endpoint and account is not")
		var pausedBuckets int
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT count(*) FROM stripe_sync_rate_limit WHERE paused_until IS NOT NULL`).Scan(&pausedBuckets))
		require.Zero(t, pausedBuckets, "no shared bucket is paused for one object's lock")
	})
}

func TestDBClock_local(t *testing.T) {
	t.Parallel()
	// The database's clock runs an hour ahead of ours.
	const ahead = time.Hour
	type reading struct{ earliest, latest, at time.Duration }
	setup := func(t *testing.T, readings ...reading) (*dbClock, time.Time) {
		t.Helper()
		base := time.Now()
		c := &dbClock{}
		for _, r := range readings {
			c.observe(base.Add(r.at+ahead), base.Add(r.earliest), base.Add(r.latest))
		}
		return c, base
	}
	// drift allows for maxClockDrift since base: well under a millisecond.
	const drift = time.Millisecond

	t.Run("SlowReply", func(t *testing.T) {
		t.Parallel()
		// Read at 1 ms; the reply was held up until 200 ms.
		c, base := setup(t, reading{earliest: 0, latest: 200 * time.Millisecond, at: time.Millisecond})
		got := c.local(base.Add(time.Second + ahead)).Sub(base)
		require.InDelta(t, 1199*time.Millisecond, got, float64(drift), "with one reading, the latest it can mean")

		// A prompt reply pins the clock closely: the slot is at 1 s, not 1.2 s.
		c.observe(base.Add(300*time.Millisecond+ahead), base.Add(300*time.Millisecond), base.Add(301*time.Millisecond))
		got = c.local(base.Add(time.Second + ahead)).Sub(base)
		require.InDelta(t, time.Second+time.Millisecond, got, float64(drift))

		// A slow reply after it teaches nothing new.
		c.observe(base.Add(400*time.Millisecond+ahead), base.Add(400*time.Millisecond), base.Add(600*time.Millisecond))
		got = c.local(base.Add(time.Second + ahead)).Sub(base)
		require.InDelta(t, time.Second+time.Millisecond, got, float64(drift))
		require.False(t, c.local(base.Add(time.Second+ahead)).Before(base.Add(time.Second)), "never early")
	})

	t.Run("ClockStepped", func(t *testing.T) {
		t.Parallel()
		c, base := setup(t, reading{earliest: 0, latest: time.Millisecond, at: time.Millisecond})
		// The database's clock is set back 5 s, which the kept reading
		// cannot account for; a slower reply after the step still wins.
		c.observe(base.Add(100*time.Millisecond+ahead-5*time.Second), base.Add(100*time.Millisecond), base.Add(110*time.Millisecond))
		got := c.local(base.Add(ahead - 4*time.Second)).Sub(base)
		require.InDelta(t, 1010*time.Millisecond, got, float64(drift), "the new reading replaces the one the step made wrong")
	})
}
