// Package jobs reconciles LodgeTix entities with Stripe: River workers that
// read an entity's current row and make its Stripe object match it
// (level-triggered: created if missing, updated if different, archived if the
// row is gone or unpublished, untouched if nothing Stripe-visible changed),
// the mapping from rows to Stripe parameters, and the fingerprints that make
// an unchanged entity cost zero Stripe writes.
//
// Each round of a job holds per-entity PostgreSQL advisory locks (session
// level, on a connection of its own; an event's before its tickets'), so two
// jobs never write one Stripe object at once, while no transaction or row
// lock is held across Stripe calls: the host's writes never wait on Stripe.
// One pipelined statement batch takes the locks, records the account about
// to be written (committed before any write, so an object whose create
// response was lost is still found on delete or account change) and reads
// the entity with its stripe_sync_state. A round finishes in one
// transaction that writes the Stripe ids back, records what it pushed,
// writes its stripe_sync_log row, and completes the River job
// (river.JobCompleteTx) only if no change to the entity committed meanwhile;
// otherwise it syncs again. That closes the window in which a change
// deduplicated against the running job would be lost. The finishing
// transaction takes row locks in the host's order (event row, ticket rows,
// event state, ticket state: see lockRank), so it never deadlocks with a
// host DELETE; the bulk paths (an organisation's account move, reconcile
// --fix) never wait on a lock while holding one (see enqueueBulk).
//
// Before a round's first Stripe write for an entity it marks the entity in
// doubt, committed on its own; the round's record clears the mark. A round
// that finds the mark set (a lost answer, a kill -9, a failed commit) does
// not trust what was last recorded but reconciles from Stripe's side; one
// that finds it clear sends only the writes the change needs, with no read
// before a create.
package jobs
