package stripeclient

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// GlobalBucket is the stripe_sync_rate_limit bucket every request takes a
// token from.
const GlobalBucket = "global"

// AccountBucket returns the bucket of one connected account's requests.
func AccountBucket(account string) string { return "acct:" + account }

// DefaultBurst is the burst a PostgresLimiter allows at perSecond when none
// is given: a tenth of a second's requests, at least 1. Kept small because
// Stripe counts requests per second: a large burst on top of a full second
// at the rate is exactly what earns a 429.
func DefaultBurst(perSecond float64) int {
	return max(1, int(perSecond/10))
}

// Penalizer is a Limiter that backs off when Stripe answers 429. The
// StripeClient calls Penalize, if its Limiter has it, with the request's
// connected account and Stripe's Retry-After (1 s when Stripe gave none).
type Penalizer interface {
	// Penalize holds back account's requests for d.
	Penalize(account string, d time.Duration)
}

// PostgresLimiterOptions configures NewPostgresLimiter.
type PostgresLimiterOptions struct {
	// Rate is the requests per second shared by every process using the
	// same database, across all accounts (bucket "global"). Zero or less
	// means no global limit.
	Rate float64
	// Burst is how many requests may go at once after a quiet spell.
	// Defaults to DefaultBurst(Rate).
	Burst int
	// AccountRate, when greater than zero, also limits each connected
	// account to this many requests per second (bucket "acct:<id>").
	// Requests on the platform account (no Stripe-Account) are not limited
	// by it. Defaults to 0: no per-account limit.
	AccountRate float64
	// AccountBurst defaults to DefaultBurst(AccountRate).
	AccountBurst int
	// OnWait, when set, is called after every admitted Wait with how long it
	// waited (zero included, so a histogram of it counts every request). It
	// must be safe for concurrent use.
	OnWait func(d time.Duration)
}

// PostgresLimiter is the Limiter shared by every worker process: a GCRA
// (token bucket) per bucket, held in the table stripe_sync_rate_limit and
// taken by the function stripe_sync_rate_take (migration 004). Each request
// costs one round trip that reserves the next free slot in its buckets; the
// caller then sleeps until that slot, so waiting workers never poll. The
// database's clock is the only clock. It is safe for concurrent use.
type PostgresLimiter struct {
	pool *pgxpool.Pool
	opts PostgresLimiterOptions
}

var (
	_ Limiter   = (*PostgresLimiter)(nil)
	_ Penalizer = (*PostgresLimiter)(nil)
)

// NewPostgresLimiter returns a limiter over pool, whose database must have
// the project's migrations applied. It makes no query.
func NewPostgresLimiter(pool *pgxpool.Pool, opts PostgresLimiterOptions) *PostgresLimiter {
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst(opts.Rate)
	}
	if opts.AccountBurst <= 0 {
		opts.AccountBurst = DefaultBurst(opts.AccountRate)
	}
	return &PostgresLimiter{pool: pool, opts: opts}
}

// Wait implements Limiter. It reserves a slot, then sleeps until it; when a
// connected account's own bucket is booked further ahead than the global
// bucket's burst tolerance, it first sleeps until the account's slot is near
// and asks again. It returns an error wrapping context.DeadlineExceeded,
// reserving nothing, when the slot lies past ctx's deadline; an error wrapping
// ctx's error if ctx ends while it sleeps (a reserved slot is then lost, which
// only slows others slightly); and the database's error if the reservation
// fails, so the request is not sent unlimited.
func (l *PostgresLimiter) Wait(ctx context.Context, account string) error {
	b := l.buckets(account)
	if len(b.names) == 0 {
		return nil
	}
	var waited time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		maxWait := math.Inf(1)
		if deadline, ok := ctx.Deadline(); ok {
			maxWait = time.Until(deadline).Seconds()
		}
		var (
			waitSeconds float64
			admitted    bool
		)
		err := l.pool.QueryRow(ctx, `SELECT wait_seconds, admitted FROM stripe_sync_rate_take($1, $2, $3, $4, $5)`,
			b.names, b.perSecond, b.burst, b.maxLead, maxWait).Scan(&waitSeconds, &admitted)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("rate limit: %w", ctxErr)
			}
			return fmt.Errorf("rate limit: take a token: %w", err)
		}
		wait := time.Duration(max(waitSeconds, 0) * float64(time.Second))
		if !admitted && waitSeconds > maxWait {
			return fmt.Errorf("rate limit: the next slot is %s away, past the deadline: %w", wait.Round(time.Millisecond), context.DeadlineExceeded)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
		if admitted {
			break
		}
	}
	if l.opts.OnWait != nil {
		l.opts.OnWait(waited)
	}
	return nil
}

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
// admit nothing for d, then resume at its rate without a burst: Stripe
// answered 429, so the shared limit is above what Stripe allows right now.
// Penalties do not add up: several 429s seen at once push the bucket to the
// latest of their ends. It is best effort: a database error is dropped, since
// the refused job waits anyway.
func (l *PostgresLimiter) Penalize(account string, d time.Duration) {
	bucket, perSecond, burst := GlobalBucket, l.opts.Rate, l.opts.Burst
	if account != "" && l.opts.AccountRate > 0 {
		bucket, perSecond, burst = AccountBucket(account), l.opts.AccountRate, l.opts.AccountBurst
	}
	if perSecond <= 0 || math.IsInf(perSecond, 1) || d <= 0 {
		return
	}
	// A slot conforms (burst - 1) emissions before tat; push tat that much
	// past d so the first request after the pause is a single one.
	push := d.Seconds() + float64(burst-1)/perSecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.pool.Exec(ctx, `
		INSERT INTO stripe_sync_rate_limit AS r (bucket, tat)
		VALUES ($1, clock_timestamp() + make_interval(secs => $2))
		ON CONFLICT (bucket) DO UPDATE SET tat = greatest(r.tat, EXCLUDED.tat)`, bucket, push)
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
func (l *PostgresLimiter) buckets(account string) takeArgs {
	var a takeArgs
	accountLead := math.Inf(1)
	if l.opts.Rate > 0 && !math.IsInf(l.opts.Rate, 1) {
		a.names = append(a.names, GlobalBucket)
		a.perSecond = append(a.perSecond, l.opts.Rate)
		a.burst = append(a.burst, int32(l.opts.Burst))
		a.maxLead = append(a.maxLead, math.Inf(1))
		// Within the global bucket's tolerance, an account's reservation
		// moves the global bucket's next slot no later than the present.
		accountLead = max(float64(l.opts.Burst-1)/l.opts.Rate, minAccountLead.Seconds())
	}
	if account != "" && l.opts.AccountRate > 0 && !math.IsInf(l.opts.AccountRate, 1) {
		a.names = append(a.names, AccountBucket(account))
		a.perSecond = append(a.perSecond, l.opts.AccountRate)
		a.burst = append(a.burst, int32(l.opts.AccountBurst))
		a.maxLead = append(a.maxLead, accountLead)
	}
	return a
}
