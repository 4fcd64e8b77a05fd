package stripeclient

import (
	"context"
	"fmt"
	"math"

	"golang.org/x/time/rate"
)

// Limiter paces requests to Stripe. A StripeClient calls Wait once before
// every HTTP request it sends, list pages included.
type Limiter interface {
	// Wait blocks until one request to the connected account (empty for the
	// platform account) may be sent. It returns an error, without waiting,
	// when ctx is done or would be done before the request may be sent; that
	// error wraps ctx's error (context.Canceled or context.DeadlineExceeded).
	Wait(ctx context.Context, account string) error
}

// NewLocalLimiter returns a Limiter shared by every account that allows
// perSecond requests per second with bursts of up to burst requests, within
// this process only. The shared limit DESIGN.md asks for lives in Postgres;
// this one serves tests, the demo and single-process use.
//
// A perSecond of zero or less means no limit. A burst below 1 is taken as 1.
func NewLocalLimiter(perSecond float64, burst int) Limiter {
	limit := rate.Limit(perSecond)
	if perSecond <= 0 || math.IsInf(perSecond, 1) {
		limit = rate.Inf
	}
	return &localLimiter{limiter: rate.NewLimiter(limit, max(burst, 1))}
}

type localLimiter struct {
	limiter *rate.Limiter
}

func (l *localLimiter) Wait(ctx context.Context, _ string) error {
	if err := l.limiter.Wait(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("rate limit: %w", ctxErr)
		}
		// rate.Limiter refuses up front when the wait would outlast ctx's
		// deadline; say so in a way errors.Is understands.
		return fmt.Errorf("rate limit: %v: %w", err, context.DeadlineExceeded)
	}
	return nil
}
