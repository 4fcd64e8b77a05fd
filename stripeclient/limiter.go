package stripeclient

import (
	"context"
	"strings"
	"time"
)

// Request is what a Limiter knows of one HTTP request to Stripe.
type Request struct {
	// Account is the connected account (the Stripe-Account header); empty
	// for the platform account.
	Account string
	// Endpoint is the method and route template Stripe limits on its own,
	// ids replaced by "{id}": "POST /v1/prices" (create),
	// "POST /v1/prices/{id}" (update) and "GET /v1/prices" (list) are three
	// (https://docs.stripe.com/rate-limits).
	Endpoint string
	// Object is the id of the object a write acts on: the path's id for an
	// update or archive, the requested id for a create that names one. Empty
	// for reads and for creates Stripe names.
	Object string
}

// Limiter paces requests to Stripe. A StripeClient calls Wait once before
// every HTTP request it sends, list pages included. The limit every worker
// process shares is stripeclient/pglimiter's.
type Limiter interface {
	// Wait blocks until req may be sent. It returns an error, without
	// waiting, when ctx is done or would be done before req may be sent;
	// that error wraps ctx's error (context.Canceled or
	// context.DeadlineExceeded).
	Wait(ctx context.Context, req Request) error
}

// ReasonLockTimeout is the RateLimited.Reason of a 429 whose error code is
// lock_timeout: one object was busy (another request or a Stripe process
// held it), which says nothing about the rate of anything else.
const ReasonLockTimeout = "lock_timeout"

// RateLimited is a 429 answer, as a Penalizer is told of it.
type RateLimited struct {
	Request
	// Reason says which limit refused the request: Stripe's
	// Stripe-Rate-Limited-Reason header ("global-rate", "endpoint-rate",
	// "global-concurrency", "endpoint-concurrency", "resource-specific"),
	// or ReasonLockTimeout when the error code was lock_timeout. Empty when
	// Stripe said neither.
	Reason string
	// RetryAfter is Stripe's Retry-After, or 1 s when Stripe gave none.
	RetryAfter time.Duration
}

// Penalizer is a Limiter that backs off when Stripe answers 429. The
// StripeClient calls Penalize, if its Limiter has it, once per 429.
type Penalizer interface {
	// Penalize holds back the requests the 429 says are too many.
	Penalize(rl RateLimited)
}

// endpointOf returns the endpoint of a request: its method and its path
// with every id segment (the ones after a resource name:
// /v1/<resource>/<id>/<resource>/<id>) replaced by "{id}".
func endpointOf(method, path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := 2; i < len(segs); i += 2 {
		segs[i] = "{id}"
	}
	return method + " /" + strings.Join(segs, "/")
}
