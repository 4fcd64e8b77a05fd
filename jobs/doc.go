// Package jobs reconciles LodgeTix entities with Stripe: River workers that
// read an entity's current row and make its Stripe object match it
// (level-triggered: created if missing, updated if different, archived if the
// row is gone or unpublished, untouched if nothing Stripe-visible changed),
// the mapping from rows to Stripe parameters, and the fingerprints that make
// an unchanged entity cost zero Stripe writes.
//
// Each job runs under a per-entity PostgreSQL advisory lock, so two jobs
// never write one Stripe object at once. A job finishes in one transaction
// that records what it pushed (stripe_sync_state), writes its
// stripe_sync_log row, and completes the River job (river.JobCompleteTx)
// only if no change to the entity committed meanwhile; otherwise it syncs
// again. That closes the window in which a change deduplicated against the
// running job would be lost.
package jobs
