package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultBackfillBatch is how many entities one backfill statement
// enqueues: large enough that the set-based insert pays off, small enough
// that a batch's locks on stripe_sync_state rows, which hold up the host's
// writes to those entities, last a fraction of a second.
const DefaultBackfillBatch = 2000

// DefaultBackfillStreams is how many batches a backfill enqueues at once,
// each on its own connection. Inserting River's rows is PostgreSQL CPU (six
// indexes per row), so a second stream uses a second core; batches touch
// disjoint entities, so the streams never wait for each other's locks.
const DefaultBackfillStreams = 2

// BackfillOptions choose what Backfill enqueues.
type BackfillOptions struct {
	// Org limits the backfill to one organisation's events and tickets.
	// Defaults to every organisation. Must be a UUID (see ParseID).
	Org string
	// Unsynced skips entities already synced to their organisation's
	// current connected account (a stripe_sync_state row holding a Stripe
	// object id on that account). Defaults to false: every entity.
	Unsynced bool
	// BatchSize is how many entities each statement enqueues. Defaults to
	// DefaultBackfillBatch.
	BatchSize int
	// Streams is how many batches are enqueued at once. Defaults to
	// DefaultBackfillStreams. With 1, batches commit in id order.
	Streams int
	// Progress, when set, is called after each committed batch with the
	// entities done so far and the total counted when the backfill started.
	// done may exceed total when rows were inserted meanwhile. Calls never
	// overlap, and report the batches in id order (events first) whatever
	// order the streams commit them in.
	Progress func(done, total int)
}

// BackfillResult counts what Backfill did.
type BackfillResult struct {
	// Events and Tickets are how many entities of each kind were enqueued or
	// found already waiting.
	Events  int
	Tickets int
	// Enqueued counts new jobs; Deduplicated counts entities whose job was
	// already waiting or running, which the enqueue collapsed into.
	Enqueued     int
	Deduplicated int
}

// backfillKinds are enqueued in this order: events first, so a ticket's job
// usually finds its Product made. Organisations are not enqueued: an
// organisation's job only enqueues its events and tickets, which the backfill
// does itself.
var backfillKinds = []Kind{KindEvent, KindTicket}

// backfillBatch is one page of ids of one kind, the seq-th page sent.
type backfillBatch struct {
	seq  int
	kind Kind
	ids  []string
}

// Backfill enqueues a sync job for every event and ticket type (or, with
// opts.Unsynced, every one not yet synced) in the bulk lane (PriorityBulk),
// so that live changes overtake the backlog. It reads the ids in pages of
// opts.BatchSize and enqueues each page with one statement of its own
// (stripe_sync_enqueue_many, the triggers' set-based insert: the row River's
// client would insert, deduplicated against jobs already waiting, and the
// change recorded, so a job running for an entity syncs it again), up to
// opts.Streams pages at once. Running it twice enqueues nothing new while
// the first run's jobs wait; a live job already waiting stays live.
//
// Backfill reads the host tables events, event_tickets and organisations.
// Returns an *InvalidIDError, before touching the database, if opts.Org is
// not a UUID. Batches committed before an error stay enqueued; the result
// counts them.
func Backfill(ctx context.Context, pool *pgxpool.Pool, opts BackfillOptions) (BackfillResult, error) {
	var res BackfillResult
	if opts.Org != "" {
		org, err := ParseID(opts.Org)
		if err != nil {
			return res, err
		}
		opts.Org = org
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBackfillBatch
	}
	if opts.Streams <= 0 {
		opts.Streams = DefaultBackfillStreams
	}

	var total int
	if err := pool.QueryRow(ctx, `SELECT (`+backfillCount(KindEvent)+`) + (`+backfillCount(KindTicket)+`)`,
		opts.Org, opts.Unsynced).Scan(&total); err != nil {
		return res, fmt.Errorf("count entities: %w", err)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan backfillBatch, opts.Streams)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		// committed holds the sizes of batches committed ahead of
		// nextReport, the batch Progress reports next.
		committed  = map[int]int{}
		nextReport int
	)
	for range opts.Streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				var inserted int
				err := pool.QueryRow(ctx, `SELECT stripe_sync_enqueue_many($1, $2::uuid[], $3)`,
					string(batch.kind), batch.ids, PriorityBulk).Scan(&inserted)
				if err != nil {
					cancel(fmt.Errorf("backfill %ss from %s: %w", batch.kind, batch.ids[0], err))
					return
				}
				mu.Lock()
				res.Enqueued += inserted
				res.Deduplicated += len(batch.ids) - inserted
				if batch.kind == KindEvent {
					res.Events += len(batch.ids)
				} else {
					res.Tickets += len(batch.ids)
				}
				committed[batch.seq] = len(batch.ids)
				for n, ok := committed[nextReport]; ok; n, ok = committed[nextReport] {
					delete(committed, nextReport)
					nextReport++
					done += n
					if opts.Progress != nil {
						opts.Progress(done, total)
					}
				}
				mu.Unlock()
			}
		}()
	}

	err := backfillPages(ctx, pool, opts, batches)
	close(batches)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	mu.Lock()
	defer mu.Unlock()
	return res, err
}

// backfillPages sends the ids to enqueue, a page at a time, kind by kind.
// Keyset pagination: each page starts after the last id of the one before,
// so a page is one index range scan however far in it is.
func backfillPages(ctx context.Context, pool *pgxpool.Pool, opts BackfillOptions, out chan<- backfillBatch) error {
	seq := 0
	for _, kind := range backfillKinds {
		after := "00000000-0000-0000-0000-000000000000"
		for {
			rows, err := pool.Query(ctx, backfillPage(kind), opts.Org, opts.Unsynced, after, opts.BatchSize)
			if err != nil {
				return fmt.Errorf("list %ss after %s: %w", kind, after, err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("list %ss after %s: %w", kind, after, err)
			}
			if len(ids) == 0 {
				break
			}
			select {
			case out <- backfillBatch{seq: seq, kind: kind, ids: ids}:
				seq++
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			if len(ids) < opts.BatchSize {
				break
			}
			after = ids[len(ids)-1]
		}
	}
	return nil
}

// backfillFrom is the rows of kind, with $1 the organisation (empty: all)
// and $2 whether to leave out entities synced to their current account.
func backfillFrom(kind Kind) string {
	synced := `EXISTS (SELECT 1 FROM stripe_sync_state s
		WHERE s.entity_type = '` + string(kind) + `' AND s.entity_id = %s
		  AND s.stripe_object_id IS NOT NULL AND s.connected_account_id = o.stripe_onbehalfof)`
	switch kind {
	case KindEvent:
		return `FROM events e JOIN organisations o ON o.organisation_id = e.organisation_id
			WHERE ($1 = '' OR e.organisation_id = nullif($1, '')::uuid)
			  AND NOT ($2 AND ` + fmt.Sprintf(synced, "e.event_id") + `)`
	case KindTicket:
		return `FROM event_tickets t JOIN events e ON e.event_id = t.event_id
			JOIN organisations o ON o.organisation_id = e.organisation_id
			WHERE ($1 = '' OR e.organisation_id = nullif($1, '')::uuid)
			  AND NOT ($2 AND ` + fmt.Sprintf(synced, "t.id") + `)`
	}
	panic(fmt.Sprintf("outbox: backfill of kind %q", string(kind)))
}

func backfillCount(kind Kind) string { return `SELECT count(*) ` + backfillFrom(kind) }

func backfillPage(kind Kind) string {
	id := "e.event_id"
	if kind == KindTicket {
		id = "t.id"
	}
	return `SELECT ` + id + `::text ` + backfillFrom(kind) + ` AND ` + id + ` > $3::uuid ORDER BY ` + id + ` LIMIT $4`
}
