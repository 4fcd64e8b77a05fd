// Package emulator is a stateful, in-memory imitation of the parts of
// Stripe's API the sync uses, for tests and the demo: Products and Prices per
// connected account (the Stripe-Account header), form-encoded parameters,
// Stripe-shaped JSON and errors, and the behaviour of Stripe's that the sync
// must survive, each modelled on Stripe's documentation:
//
//   - Idempotency (https://docs.stripe.com/api/idempotent_requests): the
//     first answer a POST with an Idempotency-Key gets, once the endpoint has
//     started executing, is stored and replayed to every later request with
//     that key (header Idempotent-Replayed: true), 500s included; a request
//     that fails validation, or is refused by a rate limit, stores nothing; a
//     key reused with other parameters is a 400 idempotency_error; a key whose
//     first request is still running is a 409 idempotency_key_in_use.
//   - Rate limits (https://docs.stripe.com/rate-limits): a global limit and a
//     limit per endpoint (one method and route template: POST /v1/prices,
//     POST /v1/prices/{id} and GET /v1/prices are three), answered 429 with
//     the header Stripe-Rate-Limited-Reason (global-rate or endpoint-rate);
//     off until SetRateLimit. A write to an object another write holds is
//     answered 429 lock_timeout.
//   - Injected faults (Fault): latency, 500s before or after the endpoint
//     started executing, 429s, and answers lost after the write was applied.
//
// An Emulator is an http.Handler that stripe-go talks to unchanged. Tests
// inspect it through its methods; another process drives it through its
// control routes under /_emulator/ with a Control.
package emulator
