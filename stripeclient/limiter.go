package stripeclient

import (
	"context"
	"time"
)

// Limiter paces requests to Stripe. A StripeClient calls Wait once before
// every HTTP request it sends, list pages included. The shared limit every
// worker process obeys is stripeclient/pglimiter's.
type Limiter interface {
	// Wait blocks until one request to the connected account (empty for the
	// platform account) may be sent. It returns an error, without waiting,
	// when ctx is done or would be done before the request may be sent; that
	// error wraps ctx's error (context.Canceled or context.DeadlineExceeded).
	Wait(ctx context.Context, account string) error
}

// Penalizer is a Limiter that backs off when Stripe answers 429. The
// StripeClient calls Penalize, if its Limiter has it, with the request's
// connected account and Stripe's Retry-After (1 s when Stripe gave none).
type Penalizer interface {
	// Penalize holds back account's requests for d.
	Penalize(account string, d time.Duration)
}
