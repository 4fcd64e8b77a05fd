// Package pglimiter is the rate limit every worker process shares, held in
// PostgreSQL and shaped like Stripe's (https://docs.stripe.com/rate-limits):
// a global limit, a limit per endpoint (one method and route template) and
// an optional limit per connected account, each a token bucket in the table
// stripe_sync_rate_limit, all booked by one call of the SQL function
// stripe_sync_rate_take and pushed back by stripe_sync_rate_penalize
// (migration 004). A Limiter is a stripeclient.Limiter and
// stripeclient.Penalizer.
package pglimiter

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// lateTolerance is how late a waiter may wake for its slot and still send:
// a third of jitterMargin, leaving the rest for the way from Wait to Stripe.
// A process that stalls (starved of CPU, paused for garbage collection) wakes
// its waiters together when it resumes; sent then, the late requests would
// bunch with the ones paced after them.
const lateTolerance = 10 * time.Millisecond

// maxRetakes bounds how many late slots one Wait gives up: a process too
// starved to wake on time at all still sends, late, rather than never.
const maxRetakes = 3

// DefaultEndpointRate is Stripe's limit of each endpoint, in requests per
// second, unless its documentation says otherwise.
const DefaultEndpointRate = 25

// Options configures New.
type Options struct {
	// Rate is the requests per second shared by every process using the
	// same database, across all accounts and endpoints (bucket "global"):
	// Stripe's global limit. The limiter admits 3% below it (see
	// jitterMargin), so that no one-second window at Stripe holds more than
	// Rate requests despite jitter. Zero or less means no global limit.
	Rate float64
	// EndpointRate, when greater than zero, also limits each endpoint (a
	// method and route template, for example "POST /v1/prices/{id}";
	// stripeclient.Request.Endpoint) to this many requests per second across
	// accounts (bucket "endpoint:<endpoint>"), with the same margin as Rate.
	// Stripe's is DefaultEndpointRate. Defaults to 0: no per-endpoint limit.
	EndpointRate float64
	// AccountRate, when greater than zero, also limits each connected
	// account to this many requests per second (bucket "acct:<id>"), with
	// the same margin as Rate. Requests on the platform account (no
	// Stripe-Account) are not limited by it. Defaults to 0: no per-account
	// limit.
	AccountRate float64
	// OnWait, when set, is called after every admitted Wait with how long it
	// waited (zero included, so a histogram of it counts every request). It
	// must be safe for concurrent use.
	OnWait func(d time.Duration)
}

// Limiter is the limiter shared by every worker process: a GCRA (token
// bucket) per bucket. Each request costs one round trip that reserves the
// next free slot in all its buckets at once; the caller then sleeps until
// that slot. The database's clock is the only clock: each process maps it
// onto its own (dbClock), so processes on several machines need not agree on
// the time. It is safe for concurrent use.
type Limiter struct {
	pool  *pgxpool.Pool
	opts  Options
	clock dbClock
	turns turns
	holds objectHolds
	// afterWake, when set, is called after each wake for a slot, before the
	// check that the wake was on time: tests stall the process there.
	afterWake func()
}

var (
	_ stripeclient.Limiter   = (*Limiter)(nil)
	_ stripeclient.Penalizer = (*Limiter)(nil)
)

// New returns a limiter over pool, whose database must have the project's
// migrations applied. It makes no query.
func New(pool *pgxpool.Pool, opts Options) *Limiter {
	return &Limiter{pool: pool, opts: opts}
}

// Wait implements stripeclient.Limiter. A write to an object Stripe lately
// answered lock_timeout for first waits out that object's hold (see
// Penalize). Then Wait reserves a slot in every bucket of req and sleeps
// until it. A slot booked ahead that it wakes for more than lateTolerance
// late (this process stalled) is given up and another reserved, at most
// maxRetakes times.
//
// It returns an error wrapping context.DeadlineExceeded, reserving nothing,
// when the slot lies past ctx's deadline; an error wrapping ctx's error if
// ctx ends while it sleeps (a reserved slot is then lost, which only slows
// others slightly); and the database's error if the reservation fails, so
// the request is not sent unlimited.
func (l *Limiter) Wait(ctx context.Context, req stripeclient.Request) error {
	waited, err := l.holds.wait(ctx, req)
	if err != nil {
		return err
	}
	b := l.buckets(req)
	if len(b.names) == 0 {
		l.observe(waited)
		return nil
	}
	for retakes := 0; ; retakes++ {
		r, err := l.reserve(ctx, b)
		waited += r.waited
		if err != nil {
			return err
		}
		wait := max(time.Until(r.slot), 0)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
		if l.afterWake != nil {
			l.afterWake()
		}
		// Sent this late, the request would land in the second of Stripe's
		// that the requests after its slot are paced to fill. A slot that
		// was free when reserved had no one paced after it yet: it is kept.
		if late := time.Since(r.slot); !r.booked || late <= lateTolerance || retakes >= maxRetakes {
			break
		}
	}
	l.observe(waited)
	return nil
}

func (l *Limiter) observe(waited time.Duration) {
	if l.opts.OnWait != nil {
		l.opts.OnWait(waited)
	}
}

// reservation is a slot reserved in every bucket of a request.
type reservation struct {
	// slot is the local instant the request may be sent.
	slot time.Time
	// booked is true when the slot lay ahead when reserved.
	booked bool
	// waited is how long reserve slept for a narrower bucket's slot to
	// come near.
	waited time.Duration
}

// reserve reserves the next slot of b's buckets. While a narrower bucket is
// booked further ahead than it may reserve, it sleeps until that bucket's
// slot is near and asks again; only one waiter of this process asks for any
// one narrower bucket at a time (turns), so a backlog does not make every
// waiter query the database at every slot.
func (l *Limiter) reserve(ctx context.Context, b takeArgs) (reservation, error) {
	var r reservation
	var narrow []string
	for i, name := range b.names {
		if !math.IsInf(b.maxLead[i], 1) {
			narrow = append(narrow, name)
		}
	}
	release, err := l.turns.take(ctx, narrow)
	if err != nil {
		return r, err
	}
	defer release()
	for {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("rate limit: %w", err)
		}
		maxWait := math.Inf(1)
		if deadline, ok := ctx.Deadline(); ok {
			maxWait = time.Until(deadline).Seconds()
		}
		var (
			waitSeconds, queuedSeconds float64
			admitted                   bool
			readAt                     time.Time
		)
		sent := time.Now()
		err := l.pool.QueryRow(ctx, `SELECT wait_seconds, admitted, read_at, queued_seconds FROM stripe_sync_rate_take($1, $2, $3, $4, $5)`,
			b.names, b.perSecond, b.burst, b.maxLead, maxWait).Scan(&waitSeconds, &admitted, &readAt, &queuedSeconds)
		received := time.Now()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return r, fmt.Errorf("rate limit: %w", ctxErr)
			}
			return r, fmt.Errorf("rate limit: take a token: %w", err)
		}
		wait := seconds(max(waitSeconds, 0))
		if !admitted {
			if waitSeconds > maxWait {
				return r, fmt.Errorf("rate limit: the next slot is %s away, past the deadline: %w", wait.Round(time.Millisecond), context.DeadlineExceeded)
			}
			if err := sleep(ctx, wait); err != nil {
				return r, err
			}
			r.waited += wait
			continue
		}
		// The database read its clock after queueing for the locks, and
		// before its reply arrived, however late that was.
		l.clock.observe(readAt, sent.Add(seconds(queuedSeconds)), received)
		r.slot = l.clock.local(readAt.Add(wait))
		r.booked = waitSeconds > 0
		return r, nil
	}
}

// seconds converts a number of seconds from the database.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("rate limit: %w", ctx.Err())
	case <-timer.C:
		return nil
	}
}

// Penalize implements stripeclient.Penalizer: it holds back what the 429
// says is too many, for rl.RetryAfter.
//
//   - A lock_timeout (stripeclient.ReasonLockTimeout) is one object's
//     contention: only writes to that object wait, in this process (see
//     objectHolds); no bucket is touched, so no other object, endpoint or
//     account slows down.
//   - An endpoint limit ("endpoint-rate", "endpoint-concurrency") pauses
//     that endpoint's bucket when EndpointRate is set.
//   - Any other 429 pauses the connected account's bucket when AccountRate
//     is set and the request had an account, else the global bucket.
//
// A paused bucket admits nothing new for RetryAfter, then resumes at its
// rate without a burst. Slots reserved before the pause are kept: they are
// already paced, and they count towards the pause, so a 429 costs at most
// RetryAfter of admissions. Penalties do not add up: a 429 that arrives while
// a pause is in force comes from a request admitted before the pause, and
// ends it no later than the pause's start plus its own RetryAfter, rather
// than restarting it (see stripe_sync_rate_penalize). It is best effort: a
// database error is dropped, since the refused job waits anyway.
func (l *Limiter) Penalize(rl stripeclient.RateLimited) {
	if rl.RetryAfter <= 0 {
		return
	}
	if rl.Reason == stripeclient.ReasonLockTimeout {
		l.holds.hold(rl.Request, rl.RetryAfter)
		return
	}
	bucket, perSecond := GlobalBucket, l.opts.Rate
	switch {
	case strings.HasPrefix(rl.Reason, "endpoint-") && rl.Endpoint != "" && limited(l.opts.EndpointRate):
		bucket, perSecond = EndpointBucket(rl.Endpoint), l.opts.EndpointRate
	case rl.Account != "" && limited(l.opts.AccountRate):
		bucket, perSecond = AccountBucket(rl.Account), l.opts.AccountRate
	}
	if !limited(perSecond) {
		return
	}
	// A slot conforms (burst - 1) emissions before tat; push tat that much
	// past the pause so the first request after it is a single one.
	tail := float64(burst-1) / paced(perSecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.pool.Exec(ctx, `SELECT stripe_sync_rate_penalize($1, $2, $3)`, bucket, rl.RetryAfter.Seconds(), tail)
}

// turns lets one waiter of this process at a time reserve in a bucket.
type turns struct {
	m sync.Map // bucket name -> chan struct{} (capacity 1)
}

// take waits for the turn of every bucket in names, in order, and returns
// the function that gives them back.
func (t *turns) take(ctx context.Context, names []string) (release func(), err error) {
	held := make([]chan struct{}, 0, len(names))
	release = func() {
		for _, ch := range held {
			<-ch
		}
	}
	for _, name := range names {
		v, _ := t.m.LoadOrStore(name, make(chan struct{}, 1))
		ch := v.(chan struct{})
		select {
		case ch <- struct{}{}:
			held = append(held, ch)
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("rate limit: %w", ctx.Err())
		}
	}
	return release, nil
}

// objectHolds are the objects Stripe lately answered lock_timeout for, each
// until its Retry-After. They live in this process only: a table row per
// object would grow without bound, and the sync's own writes to one object
// come from the one job that holds the entity's lock, whose retry a River
// snooze may move to another process, where Stripe's RetryAfter, honoured
// by the snooze, has the same effect.
type objectHolds struct {
	mu    sync.Mutex
	until map[objectKey]time.Time
}

type objectKey struct{ account, object string }

// hold makes writes to req's object wait for d.
func (h *objectHolds) hold(req stripeclient.Request, d time.Duration) {
	if req.Object == "" {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.until == nil {
		h.until = map[objectKey]time.Time{}
	}
	for k, until := range h.until {
		if !until.After(now) {
			delete(h.until, k)
		}
	}
	k := objectKey{req.Account, req.Object}
	h.until[k] = later(h.until[k], now.Add(d))
}

// wait sleeps until req's object is no longer held. It returns an error
// wrapping context.DeadlineExceeded, without waiting, when the hold outlasts
// ctx's deadline, and one wrapping ctx's error if ctx ends first.
func (h *objectHolds) wait(ctx context.Context, req stripeclient.Request) (time.Duration, error) {
	if req.Object == "" {
		return 0, nil
	}
	h.mu.Lock()
	until := h.until[objectKey{req.Account, req.Object}]
	h.mu.Unlock()
	d := time.Until(until)
	if d <= 0 {
		return 0, nil
	}
	if deadline, ok := ctx.Deadline(); ok && deadline.Before(until) {
		return 0, fmt.Errorf("rate limit: %s is busy at Stripe for %s, past the deadline: %w",
			req.Object, d.Round(time.Millisecond), context.DeadlineExceeded)
	}
	return d, sleep(ctx, d)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
