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
	// lock/idempotency conflicts: retry with backoff.
	ClassRetryable Class = iota
	// ClassRateLimited is a 429: wait (RetryAfter when Stripe said) without
	// using up an attempt.
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
}

func (e *Error) Error() string {
	if e.HTTPStatus == 0 {
		return fmt.Sprintf("stripe %s: %s: %s", e.Op, e.Class, e.Message)
	}
	if e.Code != "" {
		return fmt.Sprintf("stripe %s: %d %s: %s", e.Op, e.HTTPStatus, e.Code, e.Message)
	}
	return fmt.Sprintf("stripe %s: %d: %s", e.Op, e.HTTPStatus, e.Message)
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

// IsClass reports whether err is a Stripe error of class c.
func IsClass(err error, c Class) bool {
	var se *Error
	return errors.As(err, &se) && se.Class == c
}
