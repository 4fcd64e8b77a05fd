package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// bulkBatch is how many entities one transaction of enqueueBulk locks and
// enqueues: small enough that a busy catalogue's rows are all free at once
// now and then, large enough that River's bulk insert pays.
const bulkBatch = 500

// bulkLockTries bounds how often enqueueBulk tries one batch whose rows the
// host holds before giving up with errBulkBusy.
const bulkLockTries = 50

// errBulkBusy says the host kept some of a batch's rows locked through every
// try: the caller retries later (the organisation worker snoozes).
var errBulkBusy = errors.New("the host kept the catalogue's sync state locked; retrying later")

// enqueueBulk enqueues entities for the bulk paths (an organisation's
// account move, reconcile --fix) in the bulk lane (outbox.EnqueueBulk), so
// that they hold up no live edit and can never deadlock with the host. The host's own statements lock a host row, then the state rows its
// triggers touch, in whatever order its plan meets them (a DELETE of several
// events with their tickets: scan order, not id order), so no fixed order of
// ours can match every host statement. Instead each batch transaction takes
// the batch's existing state rows at once with NOWAIT before anything else,
// and starts again a moment later if any is held: a transaction of ours
// never waits while holding a lock, so it can never close a cycle, and
// PostgreSQL never has to abort the host's transaction to break one. With
// every state row held, the touch and River's insert (whose unique-key
// conflicts only wait on a job row whose state row the inserter holds) do not
// wait either.
//
// markDoubt also sets in_doubt on each entity (reconcile --fix: Stripe was
// found to differ from what was recorded), so its job reconciles from
// Stripe's side rather than trusting the recorded fingerprint.
//
// Batches committed before an error stay committed. Returns errBulkBusy
// after bulkLockTries for one batch.
func enqueueBulk(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], entities []outbox.Entity, markDoubt bool) ([]outbox.Result, error) {
	canonical := make([]outbox.Entity, 0, len(entities))
	for _, e := range entities {
		id, err := outbox.ParseID(e.ID)
		if err != nil {
			return nil, err
		}
		canonical = append(canonical, outbox.Entity{Kind: e.Kind, ID: id})
	}
	// Tickets before events, ids in order: the order the host's DELETE of an
	// event takes the state rows in, for whatever waits on us.
	slices.SortFunc(canonical, func(a, b outbox.Entity) int {
		return cmp.Or(cmp.Compare(kindLockOrder(a.Kind), kindLockOrder(b.Kind)), cmp.Compare(a.ID, b.ID))
	})
	canonical = slices.Compact(canonical)

	var results []outbox.Result
	for batch := range slices.Chunk(canonical, bulkBatch) {
		types := make([]string, len(batch))
		ids := make([]string, len(batch))
		for i, e := range batch {
			types[i], ids[i] = string(e.Kind), e.ID
		}
		for try := 1; ; try++ {
			var res []outbox.Result
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `
					SELECT 1 FROM stripe_sync_state s
					JOIN unnest($1::text[], $2::uuid[]) AS u(t, i) ON s.entity_type = u.t AND s.entity_id = u.i
					FOR UPDATE OF s NOWAIT`, types, ids); err != nil {
					return err
				}
				if markDoubt {
					if _, err := tx.Exec(ctx, `
						UPDATE stripe_sync_state s SET in_doubt = true
						FROM unnest($1::text[], $2::uuid[]) AS u(t, i)
						WHERE s.entity_type = u.t AND s.entity_id = u.i AND NOT s.in_doubt`, types, ids); err != nil {
						return err
					}
				}
				var err error
				res, err = outbox.EnqueueBulk(ctx, client, tx, batch...)
				return err
			})
			if err == nil {
				results = append(results, res...)
				break
			}
			if !isLockNotAvailable(err) {
				return results, fmt.Errorf("enqueue: %w", err)
			}
			if try >= bulkLockTries {
				return results, errBulkBusy
			}
			select {
			case <-ctx.Done():
				return results, ctx.Err()
			case <-time.After(time.Duration(min(try, 10)) * 20 * time.Millisecond):
			}
		}
	}
	return results, nil
}

func kindLockOrder(k outbox.Kind) int {
	switch k {
	case outbox.KindTicket:
		return 0
	case outbox.KindEvent:
		return 1
	}
	return 2
}

// isLockNotAvailable reports a NOWAIT lock that was held (SQLSTATE 55P03).
func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
