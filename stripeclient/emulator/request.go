package emulator

import (
	"strings"
	"time"
)

// RecordedRequest is one API request the Emulator answered, as tests see it.
type RecordedRequest struct {
	// RequestID is the Request-Id header of the response.
	RequestID string `json:"request_id"`
	// Time is when the request arrived, by the Emulator's Clock.
	Time time.Time `json:"time"`
	// Method is the HTTP method, for example "POST".
	Method string `json:"method"`
	// Path is the URL path without the query, for example "/v1/products".
	Path string `json:"path"`
	// Endpoint is the method and route template the request counted
	// against, for example "POST /v1/prices/{id}".
	Endpoint string `json:"endpoint"`
	// Account is the Stripe-Account header; empty for the platform.
	Account string `json:"account"`
	// IdempotencyKey is the Idempotency-Key header; empty when none.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Status is the HTTP status the Emulator answered (or would have, when
	// a FaultResponseLost dropped it); 499 when the client went away during
	// an injected latency.
	Status int `json:"status"`
	// Code is the error code of an error answer, for example "rate_limit"
	// or "lock_timeout"; empty for a success.
	Code string `json:"code,omitempty"`
	// RateLimitedReason is the Stripe-Rate-Limited-Reason header of a 429
	// from a rate limit ("global-rate" or "endpoint-rate").
	RateLimitedReason string `json:"rate_limited_reason,omitempty"`
	// Write is true for POST and DELETE.
	Write bool `json:"write"`
	// ObjectID is the object the request wrote or read, when there is one.
	ObjectID string `json:"object_id,omitempty"`
	// Replayed is true when the answer was an idempotent replay.
	Replayed bool `json:"replayed"`
	// Fault names the injected faults, comma-separated (for example
	// "latency,response_lost"); empty when none applied.
	Fault string `json:"fault,omitempty"`
}

func (x *exchange) record() {
	x.rec.Fault = strings.Join(x.faults, ",")
	e := x.e
	e.mu.Lock()
	e.requests = append(e.requests, x.rec)
	e.mu.Unlock()
	e.logger.Debug("stripe emulator request",
		"method", x.rec.Method, "path", x.rec.Path, "account", x.rec.Account,
		"status", x.rec.Status, "code", x.rec.Code, "object_id", x.rec.ObjectID,
		"replayed", x.rec.Replayed, "fault", x.rec.Fault, "request_id", x.rec.RequestID)
}
