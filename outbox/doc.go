// Package outbox is the enqueue side of stripe-sync: the job contract (kinds,
// args, queue, unique keys) shared with the SQL triggers, and a Go API that
// enqueues sync jobs inside a caller's pgx.Tx, so a rolled-back change leaves
// no job and a committed one always leaves exactly one waiting job.
//
// The triggers installed by package migrations write the same rows River's
// client writes for these args (a test pins the two together), so a trigger
// insert and an Enqueue for the same entity collapse into one job.
//
// outbox imports no other package of this project.
package outbox
