package outbox_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

// Bulk work (a backfill, a repair) goes in the bulk lane, below live
// changes. A live change to an entity whose bulk job still waits lifts that
// same job into the live lane: still one job for the entity.
func Example_lanes() {
	ctx := context.Background()
	pool, drop := testdb.ForExample()
	defer drop()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: outbox.DefaultSchema})
	if err != nil {
		panic(err)
	}

	ticket := outbox.Entity{Kind: outbox.KindTicket, ID: "07000000-0000-4000-8000-000000000001"}
	for _, enqueue := range []func(context.Context, *river.Client[pgx.Tx], pgx.Tx, ...outbox.Entity) ([]outbox.Result, error){
		outbox.EnqueueBulk, outbox.Enqueue,
	} {
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := enqueue(ctx, client, tx, ticket)
			return err
		})
		if err != nil {
			panic(err)
		}
		var jobs, priority int
		if err := pool.QueryRow(ctx, `SELECT count(*), max(priority) FROM river_job WHERE kind = 'stripe_sync_ticket'`).Scan(&jobs, &priority); err != nil {
			panic(err)
		}
		fmt.Printf("jobs: %d, lane: %s\n", jobs, outbox.Lane(priority))
	}
	// Output:
	// jobs: 1, lane: bulk
	// jobs: 1, lane: live
}
