package emulator

import (
	"net/http"
	"time"
)

// Overlap is a write to an object that arrived while another write to the
// same object was in flight: the Emulator answered it 429 lock_timeout, as
// Stripe does (https://docs.stripe.com/rate-limits, "Object lock timeouts";
// https://docs.stripe.com/error-codes#lock-timeout).
type Overlap struct {
	// Account is the Stripe-Account of both writes.
	Account string `json:"account"`
	// ObjectID is the id both wrote to.
	ObjectID string `json:"object_id"`
	// FirstRequestID and SecondRequestID are the RecordedRequest ids, the
	// first being the one already in flight.
	FirstRequestID  string `json:"first_request_id"`
	SecondRequestID string `json:"second_request_id"`
	// Time is when the second write arrived, by the Emulator's Clock.
	Time time.Time `json:"time"`
}

type objectKey struct {
	account string
	id      string
}

// Overlaps returns the writes refused because another write to the same
// (account, object) was in flight. A write is in flight from its arrival
// (before any injected latency) until its answer is ready.
func (e *Emulator) Overlaps() []Overlap {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Overlap{}, e.overlaps...)
}

// lockLocked makes requestID the write in flight on key. If another write
// holds key it records the Overlap and returns false. The caller holds e.mu.
func (e *Emulator) lockLocked(key objectKey, requestID string, at time.Time) bool {
	if holder, held := e.locks[key]; held {
		e.overlaps = append(e.overlaps, Overlap{
			Account:         key.account,
			ObjectID:        key.id,
			FirstRequestID:  holder,
			SecondRequestID: requestID,
			Time:            at,
		})
		return false
	}
	e.locks[key] = requestID
	return true
}

// unlock ends requestID's hold on key.
func (e *Emulator) unlock(key objectKey, requestID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.locks[key] == requestID {
		delete(e.locks, key)
	}
}

// errLockTimeout is Stripe's 429 for a request that could not take its
// object's lock in time. It is not a rate limit: no
// Stripe-Rate-Limited-Reason, and nothing is stored under the key.
func errLockTimeout() *apiError {
	return &apiError{
		status: http.StatusTooManyRequests,
		typ:    "invalid_request_error",
		code:   "lock_timeout",
		message: "This object cannot be accessed right now because another API request or Stripe process is " +
			"currently accessing it. If you see this error intermittently, retry the request.",
	}
}
