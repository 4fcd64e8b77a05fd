package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

// The host application enqueues a sync in the transaction that changes the
// row, so the job exists exactly when the change does. A second enqueue of
// the same entity while its job waits collapses into it.
func Example_enqueue() {
	ctx := context.Background()
	pool, drop := testdb.ForExample()
	defer drop()
	// An insert-only River client: no workers, no queues.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: outbox.DefaultSchema})
	if err != nil {
		panic(err)
	}

	eventID, err := outbox.ParseID("0E000000-0000-4000-8000-000000000001")
	if err != nil {
		panic(err)
	}
	for range 2 {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			// ... the host's own writes go here, in tx ...
			results, err := outbox.Enqueue(ctx, client, tx, outbox.Entity{Kind: outbox.KindEvent, ID: eventID})
			if err != nil {
				return err
			}
			fmt.Printf("%s %s duplicate=%v\n", results[0].Entity.Kind.JobKind(), results[0].Entity.ID, results[0].Duplicate)
			return nil
		})
		if err != nil {
			panic(err)
		}
	}

	var jobs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_event'`).Scan(&jobs); err != nil {
		panic(err)
	}
	fmt.Println("jobs waiting:", jobs)
	// Output:
	// stripe_sync_event 0e000000-0000-4000-8000-000000000001 duplicate=false
	// stripe_sync_event 0e000000-0000-4000-8000-000000000001 duplicate=true
	// jobs waiting: 1
}

// A job names its entity and nothing else: its args are the entity's id
// under the key the kind names, and River's unique key (kind + args) makes
// one waiting job per entity, whoever enqueued it: a trigger, `syncctl
// enqueue`, or a backfill.
func ExampleKind_Args() {
	for _, kind := range outbox.Kinds {
		args := kind.Args("0e000000-0000-4000-8000-000000000001")
		encoded, err := json.Marshal(args)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-18s %s\n", args.Kind(), encoded)
	}
	// Output:
	// stripe_sync_event  {"event_id":"0e000000-0000-4000-8000-000000000001"}
	// stripe_sync_ticket {"ticket_id":"0e000000-0000-4000-8000-000000000001"}
	// stripe_sync_org    {"organisation_id":"0e000000-0000-4000-8000-000000000001"}
}
