package stripeclient

import (
	"errors"
	"fmt"
	"time"
)

// Class is what the caller should do about a failed Stripe request; it maps
// onto DESIGN.md's error table.
type Class int

const (
	// ClassRetryable covers network errors, lost responses, 5xx and 409
	// lock/idempotency conflicts: retry with backoff. Which Idempotency-Key
	// the retry must send depends on the Error's Answer: see NeedsNewKey.
	ClassRetryable Class = iota
	// ClassRateLimited is a 429: wait (RetryAfter when Stripe said) without
	// using up an attempt. RateLimitedReason says which limit it was; a
	// lock_timeout is one object's contention, not a rate.
	ClassRateLimited
	// ClassInvalid is a 400 that says the data is invalid for Stripe: do not
	// retry.
	ClassInvalid
	// ClassAuth is a 401/403: bad key or account not connected. Retried, as
	// an operator must fix configuration, and loud in logs.
	ClassAuth
	// ClassNotFound is resource_missing on a known id.
	ClassNotFound
	// ClassAlreadyExists is resource_already_exists on create with an id.
	ClassAlreadyExists
)

func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassRateLimited:
		return "rate_limited"
	case ClassInvalid:
		return "invalid"
	case ClassAuth:
		return "auth"
	case ClassNotFound:
		return "not_found"
	case ClassAlreadyExists:
		return "already_exists"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Answer is what a failed request got back from Stripe, which decides the
// Idempotency-Key the next attempt must send (DESIGN.md, "Errors").
type Answer int

const (
	// AnswerNone: no answer arrived. A network error, a timeout, a
	// connection lost before the response was complete, a context that
	// ended while the request was out, or a request never sent (the limiter
	// refused it). Stripe may or may not have applied the request, and has
	// stored its answer under the key if it did: the next attempt must send
	// the same key (the same Call.IdempotencySalt), so that Stripe replays
	// that answer instead of applying the change twice.
	AnswerNone Answer = iota
	// AnswerServerError: Stripe answered 5xx, or replayed a 5xx it had
	// stored under the key (Error.Replayed). Stripe stores a 500 raised once
	// the endpoint started executing and answers every later request with
	// the key the same way for at least 24 hours: the next attempt must send
	// a new key (a new Call.IdempotencySalt). The outcome is unknown, so the
	// new attempt must be safe to apply twice (a deterministic id, a
	// transferred lookup key).
	AnswerServerError
	// AnswerClientError: Stripe answered 4xx. Its Class says what to do; the
	// key needs no change (a 409 or 429 stored nothing under it, and any
	// other 4xx is replayed only to a request with the same parameters).
	AnswerClientError
)

func (a Answer) String() string {
	switch a {
	case AnswerNone:
		return "none"
	case AnswerServerError:
		return "server_error"
	case AnswerClientError:
		return "client_error"
	}
	return fmt.Sprintf("answer(%d)", int(a))
}

// Error is every error a Client returns. Its message never holds the secret
// key: Stripe's own messages are scrubbed before they get here.
type Error struct {
	Class Class
	// Op is the operation, for example "create_product".
	Op string
	// HTTPStatus is 0 when no response arrived (network error).
	HTTPStatus int
	// Code is Stripe's error code, for example "resource_missing".
	Code string
	// Message is Stripe's message (scrubbed) or the network error's text.
	Message string
	// RequestID is Stripe's Request-Id header, when there was one.
	RequestID string
	// RetryAfter is how long Stripe asked us to wait, when it said.
	RetryAfter time.Duration
	// Answer tells a failure with no answer from a 5xx answer; see Answer.
	Answer Answer
	// Replayed is true when Stripe answered from its idempotency store
	// (Idempotent-Replayed: true): the answer is the one it gave the first
	// request with this Idempotency-Key, not news about this attempt.
	Replayed bool
	// RateLimitedReason is, for a 429, which limit refused the request:
	// Stripe's Stripe-Rate-Limited-Reason header ("global-rate",
	// "endpoint-rate", ...), or ReasonLockTimeout for an object's lock.
	// Empty for other errors and when Stripe said neither.
	RateLimitedReason string
}

// Error reads "stripe <op>: <status> <code>: <message>", with " (replayed)"
// after an answer Stripe replayed from its idempotency store, so that an
// operator reading a job's errors sees a stored 500 for what it is.
func (e *Error) Error() string {
	var s string
	switch {
	case e.HTTPStatus == 0:
		s = fmt.Sprintf("stripe %s: %s: %s", e.Op, e.Class, e.Message)
	case e.Code != "":
		s = fmt.Sprintf("stripe %s: %d %s: %s", e.Op, e.HTTPStatus, e.Code, e.Message)
	default:
		s = fmt.Sprintf("stripe %s: %d: %s", e.Op, e.HTTPStatus, e.Message)
	}
	if e.Replayed {
		s += " (replayed)"
	}
	return s
}

// ClassOf returns err's Class, and ClassRetryable for an error that did not
// come from Stripe (a cancelled context, say), since those are transient.
func ClassOf(err error) Class {
	var se *Error
	if errors.As(err, &se) {
		return se.Class
	}
	return ClassRetryable
}

// AnswerOf returns the Answer of a failed request's error: that of an *Error,
// and AnswerNone for any other error (a context that ended while the request
// was out: Stripe may have received it).
func AnswerOf(err error) Answer {
	var se *Error
	if errors.As(err, &se) {
		return se.Answer
	}
	return AnswerNone
}

// NeedsNewKey reports whether the attempt after the failure err must send a
// new Idempotency-Key (a new Call.IdempotencySalt): true only when Stripe
// answered 5xx or replayed one (AnswerServerError). After a failure with no
// answer it is false: the same key lets Stripe replay what it applied.
func NeedsNewKey(err error) bool { return AnswerOf(err) == AnswerServerError }

// IsClass reports whether err is a Stripe error of class c.
func IsClass(err error, c Class) bool {
	var se *Error
	return errors.As(err, &se) && se.Class == c
}
