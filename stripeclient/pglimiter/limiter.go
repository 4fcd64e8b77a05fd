// Package pglimiter is the rate limit every worker process shares, held in
// PostgreSQL: token buckets in the table stripe_sync_rate_limit, taken by the
// SQL function stripe_sync_rate_take and pushed back by
// stripe_sync_rate_penalize (migration 004). A Limiter is a
// stripeclient.Limiter and stripeclient.Penalizer.
package pglimiter

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// GlobalBucket is the stripe_sync_rate_limit bucket every request takes a
// token from.
const GlobalBucket = "global"

// AccountBucket returns the bucket of one connected account's requests.
func AccountBucket(account string) string { return "acct:" + account }

// burst is how many requests a bucket lets go at once after a quiet spell:
// 1, at any rate. Stripe counts requests in a sliding one-second window, so a
// burst after a quiet spell only moves requests into a window that the
// requests paced after it fill anyway, and those past the rate are refused
// (429).
const burst = 1

// jitterMargin is how much further apart the limiter spaces requests than the
// rate alone asks: each run of perSecond requests spans 1 s plus this, so a
// bucket admits at perSecond / 1.03, 97% of it. It is a deliberate margin for
// the jitter between our admission time and the time Stripe sees the request
// (timer wake-up, scheduling, connection set-up, network): Stripe counts
// requests in a sliding window, so at exactly the rate a request that reaches
// Stripe a few milliseconds late puts perSecond + 1 requests in the window
// that ends one second after it, and the last is refused. `make bench`
// (figure 4, a strict sliding window on a loaded 2-core machine) measured
// 20 ms too little: such delays reach 20-30 ms there.
const jitterMargin = 30 * time.Millisecond

// lateTolerance is how late a waiter may wake for its slot and still send:
// a third of jitterMargin, leaving the rest for the way from Wait to Stripe.
// A process that stalls (starved of CPU, paused for garbage collection) wakes
// its waiters together when it resumes; sent then, the late requests would
// bunch with the ones paced after them.
const lateTolerance = 10 * time.Millisecond

// maxRetakes bounds how many late slots one Wait gives up: a process too
// starved to wake on time at all still sends, late, rather than never.
const maxRetakes = 3

// paced returns the rate a bucket limited to perSecond admits at.
func paced(perSecond float64) float64 {
	return perSecond / (1 + jitterMargin.Seconds())
}

// Options configures New.
type Options struct {
	// Rate is the requests per second shared by every process using the
	// same database, across all accounts (bucket "global"): Stripe's limit.
	// The limiter admits 3% below it (see jitterMargin), so that no
	// one-second window at Stripe holds more than Rate requests despite
	// jitter. Zero or less means no global limit.
	Rate float64
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

// Limiter is the Limiter shared by every worker process: a GCRA
// (token bucket) per bucket, held in the table stripe_sync_rate_limit and
// taken by the function stripe_sync_rate_take (migration 004). Each request
// costs one round trip that reserves the next free slot in its buckets; the
// caller then sleeps until that slot, so waiting workers never poll. The
// database's clock is the only clock: each process maps it onto its own
// (dbClock), so processes on several machines need not agree on the time. It
// is safe for concurrent use.
type Limiter struct {
	pool  *pgxpool.Pool
	opts  Options
	clock dbClock
	// afterWake, when set, is called after each wake for a slot, before the
	// check that the wake was on time: tests stall the process there.
	afterWake func()
}

var (
	_ stripeclient.Limiter   = (*Limiter)(nil)
	_ stripeclient.Penalizer = (*Limiter)(nil)
)

// New returns a limiter over pool, whose database must have
// the project's migrations applied. It makes no query.
func New(pool *pgxpool.Pool, opts Options) *Limiter {
	return &Limiter{pool: pool, opts: opts}
}

// Wait implements Limiter. It reserves a slot, then sleeps until it; when a
// connected account's own bucket is booked further ahead than the global
// bucket's burst tolerance, it first sleeps until the account's slot is near
// and asks again. A slot booked ahead that it wakes for more than
// lateTolerance late (this process stalled) is given up and another
// reserved, at most maxRetakes times. It returns an error wrapping context.DeadlineExceeded, reserving
// nothing, when the slot lies past ctx's deadline; an error wrapping ctx's
// error if ctx ends while it sleeps (a reserved slot is then lost, which only
// slows others slightly); and the database's error if the reservation fails,
// so the request is not sent unlimited.
func (l *Limiter) Wait(ctx context.Context, account string) error {
	b := l.buckets(account)
	if len(b.names) == 0 {
		return nil
	}
	var (
		waited  time.Duration
		retakes int
	)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rate limit: %w", err)
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
				return fmt.Errorf("rate limit: %w", ctxErr)
			}
			return fmt.Errorf("rate limit: take a token: %w", err)
		}
		wait := seconds(max(waitSeconds, 0))
		if !admitted {
			if waitSeconds > maxWait {
				return fmt.Errorf("rate limit: the next slot is %s away, past the deadline: %w", wait.Round(time.Millisecond), context.DeadlineExceeded)
			}
			if err := sleep(ctx, wait); err != nil {
				return err
			}
			waited += wait
			continue
		}
		// The database read its clock after queueing for the locks, and
		// before its reply arrived, however late that was.
		l.clock.observe(readAt, sent.Add(seconds(queuedSeconds)), received)
		slot := l.clock.local(readAt.Add(wait))
		wait = max(time.Until(slot), 0)
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
		booked := waitSeconds > 0
		if late := time.Since(slot); booked && late > lateTolerance && retakes < maxRetakes {
			retakes++
			continue
		}
		break
	}
	if l.opts.OnWait != nil {
		l.opts.OnWait(waited)
	}
	return nil
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

// Penalize makes the bucket that governs account's requests (the account's
// when AccountRate is set and account is not empty, else the global one)
// admit nothing new for d, then resume at its rate without a burst: Stripe
// answered 429, so the shared limit is above what Stripe allows right now.
// Slots reserved before the pause are kept: they are already paced, and they
// count towards the pause, so a 429 costs at most d of admissions. Penalties
// do not add up: a 429 that arrives while a pause is in force comes from a
// request admitted before the pause, and ends it no later than the pause's
// start plus its own d, rather than restarting it (see
// stripe_sync_rate_penalize). It is best effort: a database error is
// dropped, since the refused job waits anyway.
func (l *Limiter) Penalize(account string, d time.Duration) {
	bucket, perSecond := GlobalBucket, l.opts.Rate
	if account != "" && l.opts.AccountRate > 0 {
		bucket, perSecond = AccountBucket(account), l.opts.AccountRate
	}
	if perSecond <= 0 || math.IsInf(perSecond, 1) || d <= 0 {
		return
	}
	// A slot conforms (burst - 1) emissions before tat; push tat that much
	// past the pause so the first request after it is a single one.
	tail := float64(burst-1) / paced(perSecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.pool.Exec(ctx, `SELECT stripe_sync_rate_penalize($1, $2, $3)`, bucket, d.Seconds(), tail)
}

// minAccountLead is the least an account's bucket may be booked ahead and
// still reserve: enough to absorb the time a waiter takes to wake and ask.
const minAccountLead = 10 * time.Millisecond

// takeArgs are stripe_sync_rate_take's per-bucket arguments.
type takeArgs struct {
	names     []string
	perSecond []float64
	burst     []int32
	maxLead   []float64
}

// buckets lists the buckets a request on account takes from, "global"
// first: stripe_sync_rate_take locks them in this order.
func (l *Limiter) buckets(account string) takeArgs {
	var a takeArgs
	accountLead := math.Inf(1)
	if l.opts.Rate > 0 && !math.IsInf(l.opts.Rate, 1) {
		a.names = append(a.names, GlobalBucket)
		a.perSecond = append(a.perSecond, paced(l.opts.Rate))
		a.burst = append(a.burst, int32(burst))
		a.maxLead = append(a.maxLead, math.Inf(1))
		// Within the global bucket's tolerance, an account's reservation
		// moves the global bucket's next slot no later than the present.
		accountLead = max(float64(burst-1)/paced(l.opts.Rate), minAccountLead.Seconds())
	}
	if account != "" && l.opts.AccountRate > 0 && !math.IsInf(l.opts.AccountRate, 1) {
		a.names = append(a.names, AccountBucket(account))
		a.perSecond = append(a.perSecond, paced(l.opts.AccountRate))
		a.burst = append(a.burst, int32(burst))
		a.maxLead = append(a.maxLead, accountLead)
	}
	return a
}

// dbClock maps the database's clock onto this process's, so a waiter sleeps
// until its slot however long the reply reserving it took to arrive: a reply
// held up by a stall would otherwise wake its waiter that much late. It keeps
// the reading that pins the database's clock closest: the database's clock
// read serverAt at a local instant in the width before localAt. It is safe
// for concurrent use.
type dbClock struct {
	mu       sync.Mutex
	set      bool
	serverAt time.Time
	localAt  time.Time
	width    time.Duration
}

// maxClockDrift is how fast two machines' clocks may drift apart, NTP's
// bound with room to spare: the older a reading, the less closely it pins
// the database's clock.
const maxClockDrift = 500e-6

// observe learns from one reading of the database's clock, server, taken at
// a local instant between earliest and latest.
func (c *dbClock) observe(server, earliest, latest time.Time) {
	if earliest.After(latest) {
		earliest = latest
	}
	width := latest.Sub(earliest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set {
		drift := c.drift(latest)
		predicted := c.localAt.Add(server.Sub(c.serverAt))
		// A reading the kept one cannot account for means the database's
		// clock was stepped: start again from this one.
		consistent := !predicted.Add(drift).Before(earliest) && !predicted.Add(-c.width-drift).After(latest)
		if consistent && width >= c.width+drift {
			return
		}
	}
	c.serverAt, c.localAt, c.width, c.set = server, latest, width, true
}

// local returns the local instant of the database's instant server, at the
// latest: a waiter that sleeps until it is never early.
func (c *dbClock) local(server time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	return c.localAt.Add(server.Sub(c.serverAt) + c.drift(now))
}

// drift is how far the clocks may have drifted since the kept reading. The
// caller holds c.mu.
func (c *dbClock) drift(now time.Time) time.Duration {
	return time.Duration(float64(now.Sub(c.localAt)) * maxClockDrift)
}
