// Package e2e holds process-level tests of stripe-sync: the syncctl binary,
// built once per test run, runs as separate worker and Stripe emulator
// processes against a real PostgreSQL database, and the tests kill, signal
// and restart them the way production would. They prove what no in-process
// test can: convergence when workers die mid-call, a rate limit shared
// between processes, graceful shutdown, and that the secret key never leaks
// into any output.
//
// The chaos test's length is set by CHAOS_DURATION (a Go duration, default
// 10s of mutations); `make chaos` runs it for 3 minutes.
package e2e
