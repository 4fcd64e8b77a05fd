package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// DefaultEndpointRate is Stripe's limit of each endpoint, in requests per
// second, unless its documentation says otherwise
// (https://docs.stripe.com/rate-limits).
const DefaultEndpointRate = 25

// RateLimit is what SetRateLimit enforces: how many API requests a sliding
// one-second window (by the Emulator's Clock) may hold. Refused requests do
// not count. Zero turns a limit off.
type RateLimit struct {
	// Global counts every API request, whatever its account or endpoint:
	// Stripe allows 100 a second in live mode, 25 in a sandbox. Answered 429
	// with Stripe-Rate-Limited-Reason: global-rate.
	Global int
	// Endpoint counts each endpoint's requests on their own, on top of
	// Global. An endpoint is a method and a route template:
	// "POST /v1/prices" (create), "POST /v1/prices/{id}" (update) and
	// "GET /v1/prices" (list) are three. Stripe's is DefaultEndpointRate.
	// Answered 429 with Stripe-Rate-Limited-Reason: endpoint-rate.
	Endpoint int
}

// The values of Stripe's Stripe-Rate-Limited-Reason header the Emulator
// sends (https://docs.stripe.com/rate-limits).
const (
	reasonGlobalRate   = "global-rate"
	reasonEndpointRate = "endpoint-rate"
)

// SetRateLimit replaces the rate limits and forgets the requests counted
// so far. The zero RateLimit, the default, limits nothing.
func (e *Emulator) SetRateLimit(limit RateLimit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.limits = rateLimiter{limit: limit}
}

// rateLimiter holds the sliding windows of the rate limits.
type rateLimiter struct {
	limit     RateLimit
	global    []time.Time
	endpoints map[string][]time.Time
}

// admit counts a request to endpoint arriving at now and returns "" if the
// limits let it through, or the reason it is refused. The caller holds e.mu.
func (l *rateLimiter) admit(now time.Time, endpoint string) string {
	cutoff := now.Add(-time.Second)
	l.global = inWindow(l.global, cutoff)
	if l.limit.Global > 0 && len(l.global) >= l.limit.Global {
		return reasonGlobalRate
	}
	var window []time.Time
	if l.limit.Endpoint > 0 {
		if l.endpoints == nil {
			l.endpoints = map[string][]time.Time{}
		}
		window = inWindow(l.endpoints[endpoint], cutoff)
		l.endpoints[endpoint] = window
		if len(window) >= l.limit.Endpoint {
			return reasonEndpointRate
		}
		l.endpoints[endpoint] = append(window, now)
	}
	if l.limit.Global > 0 {
		l.global = append(l.global, now)
	}
	return ""
}

// inWindow drops the times at or before cutoff; times are in order.
func inWindow(times []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(times) && !times[i].After(cutoff) {
		i++
	}
	return times[i:]
}

// errRateLimited is Stripe's 429 for a request over a rate limit; reason,
// when set, goes in the Stripe-Rate-Limited-Reason header.
func errRateLimited(reason string, retryAfter time.Duration) *apiError {
	e := &apiError{
		status:  http.StatusTooManyRequests,
		typ:     "invalid_request_error",
		code:    "rate_limit",
		message: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
		header:  http.Header{"Retry-After": {retryAfterSeconds(retryAfter)}},
	}
	if reason != "" {
		e.header.Set("Stripe-Rate-Limited-Reason", reason)
	}
	return e
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	if d <= 0 {
		return "1"
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
