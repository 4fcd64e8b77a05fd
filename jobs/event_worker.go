package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// EventWorker makes an event's Stripe Product match its row, on its
// organisation's connected account.
type EventWorker struct {
	river.WorkerDefaults[outbox.EventArgs]
	deps *Deps
}

// Work reconciles one event. See the package doc for the protocol.
func (w *EventWorker) Work(ctx context.Context, job *river.Job[outbox.EventArgs]) error {
	id, err := outbox.ParseID(job.Args.EventID)
	if err != nil {
		return river.JobCancel(err)
	}
	return run(ctx, w.deps.runner(), job, entityRef{outbox.KindEvent, id},
		func(ctx context.Context, tx pgx.Tx, logger *slog.Logger) (*outcome, error) {
			if err := lock(ctx, tx, outbox.KindEvent, id); err != nil {
				return nil, err
			}
			ev, st, err := loadEvent(ctx, tx, id)
			if err != nil {
				return nil, err
			}
			o := w.deps.syncProduct(ctx, tx, id, ev, st, logger)
			if o.action == ActionCreate && o.err == nil {
				// A Product new on this account (first sync, a fixed title,
				// a new connected account): the tickets follow it there.
				if err := lockEventRow(ctx, tx, id); err != nil {
					return nil, err
				}
				if err := enqueueTicketsOffAccount(ctx, tx, id, o.account); err != nil {
					return nil, err
				}
			}
			return o, nil
		})
}

// NextRetry caps River's attempt^4 backoff, so a change made during a long
// Stripe outage waits minutes, not days, once Stripe is back.
func (w *EventWorker) NextRetry(job *river.Job[outbox.EventArgs]) time.Time {
	return nextRetry(job.Attempt)
}

// syncState is what stripe_sync_state says was last pushed for an entity.
type syncState struct {
	wanted      int64
	account     string
	objectID    string
	fingerprint string
}

// loadEvent reads the event, its organisation's account and its sync state in
// one statement, so the version read matches the row read. ev is nil when the
// row is gone.
func loadEvent(ctx context.Context, tx pgx.Tx, id string) (*eventRow, *syncState, error) {
	var (
		st      syncState
		ev      eventRow
		present bool
	)
	err := tx.QueryRow(ctx, `
		SELECT coalesce(s.wanted_version, 0), coalesce(s.connected_account_id, ''),
		       coalesce(s.stripe_object_id, ''), coalesce(s.fingerprint, ''),
		       e.event_id IS NOT NULL, coalesce(e.organisation_id::text, ''), e.parent_event_id::text,
		       e.title, e.description, e.type, e.slug, e.event_start, e.event_end, e.image_url,
		       e.is_published, e.stripe_product_id, o.stripe_onbehalfof
		FROM (SELECT $1::uuid AS id) k
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'event' AND s.entity_id = k.id
		LEFT JOIN events e ON e.event_id = k.id
		LEFT JOIN organisations o ON o.organisation_id = e.organisation_id`, id,
	).Scan(&st.wanted, &st.account, &st.objectID, &st.fingerprint,
		&present, &ev.OrganisationID, &ev.ParentEventID,
		&ev.Title, &ev.Description, &ev.Type, &ev.Slug, &ev.EventStart, &ev.EventEnd, &ev.ImageURL,
		&ev.IsPublished, &ev.StripeProductID, &ev.Account)
	if err != nil {
		return nil, nil, fmt.Errorf("load event %s: %w", id, err)
	}
	if !present {
		return nil, &st, nil
	}
	ev.EventID = id
	return &ev, &st, nil
}

// syncProduct makes the event's Product match ev (nil: the row is gone).
func (d *Deps) syncProduct(ctx context.Context, tx pgx.Tx, id string, ev *eventRow, st *syncState, logger *slog.Logger) *outcome {
	o := &outcome{version: st.wanted, account: st.account, objectID: st.objectID}
	scope := fmt.Sprintf("event:%s:v%d", id, st.wanted)

	if ev == nil {
		if st.objectID == "" {
			return o.skip(ActionDelete, "event row is gone and nothing was ever pushed to Stripe")
		}
		if st.fingerprint == fingerprintArchived {
			return o.succeed(ActionUnchanged, st.account, st.objectID, fingerprintArchived)
		}
		call := stripeclient.Call{Account: st.account, IdempotencyScope: scope}
		if _, err := d.Stripe.ArchiveProduct(ctx, call, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return o.fail(ActionDelete, err)
		}
		if err := d.archiveEventPrices(ctx, tx, id, scope, logger); err != nil {
			return o.fail(ActionDelete, err)
		}
		return o.succeed(ActionDelete, st.account, st.objectID, fingerprintArchived)
	}

	account := deref(ev.Account)
	if account == "" {
		return o.skip(ActionSync, fmt.Sprintf("organisation %s has no connected Stripe account", ev.OrganisationID))
	}
	params, err := productParams(ev)
	if err != nil {
		return o.fail(ActionSync, err)
	}
	fp := productFingerprint(params)
	productID := firstNonEmpty(deref(ev.StripeProductID), st.objectID, ProductID(id))
	if productID != deref(ev.StripeProductID) {
		o.writeBack = &writeBack{
			sql: `UPDATE events SET stripe_product_id = $2 WHERE event_id = $1 AND stripe_product_id IS DISTINCT FROM $2`,
			id:  id, val: productID,
		}
	}
	known := st.account == account && st.objectID == productID
	if known && st.fingerprint == fp {
		return o.succeed(ActionUnchanged, account, productID, fp)
	}

	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	action, err := ensureProduct(ctx, d.Stripe, call, productID, params, known)
	o.account, o.objectID = account, productID
	if err != nil {
		return o.fail(action, err)
	}
	if st.account != "" && st.account != account && st.objectID != "" {
		// The organisation moved to another account: the old Product must
		// stop selling. The old account may be disconnected already, so
		// this is best effort, but only then: after a transient failure a
		// retry must archive it, or it stays on sale for good.
		old := stripeclient.Call{Account: st.account, IdempotencyScope: scope}
		if _, err := d.Stripe.ArchiveProduct(ctx, old, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			if transient(err) {
				return o.fail(ActionArchive, err)
			}
			logger.Warn("could not archive the Product on the previous account",
				slog.String("previous_account", st.account), slog.String("error", err.Error()))
		}
	}
	return o.succeed(action, account, productID, fp)
}

// transient reports whether err says nothing lasting about the request: a
// network error, a 5xx or a 429.
func transient(err error) bool {
	return stripeclient.IsClass(err, stripeclient.ClassRetryable) || stripeclient.IsClass(err, stripeclient.ClassRateLimited)
}

// lockEventRow takes the event's row lock (FOR NO KEY UPDATE: a host DELETE
// or UPDATE of the event waits for it, a new ticket's foreign-key check does
// not) before the job writes rows the host's triggers also write. A host
// DELETE locks the event row, then its tickets' rows (the foreign key
// cascades before the sync trigger fires), then the event's
// stripe_sync_state row; a job holding that state row or a ticket's new job
// row, then writing the event or a ticket row back, would deadlock with it,
// and PostgreSQL may abort the host's DELETE. Taking the event row first
// puts the job in the host's order.
func lockEventRow(ctx context.Context, tx pgx.Tx, eventID string) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM events WHERE event_id = $1 FOR NO KEY UPDATE`, eventID); err != nil {
		return fmt.Errorf("lock event %s row: %w", eventID, err)
	}
	return nil
}

// ensureProduct creates or updates the Product with id so it matches params.
// known says stripe_sync_state already records it on this account; either
// way a Product found missing is created and one found existing is adopted.
func ensureProduct(ctx context.Context, sc stripeclient.Client, call stripeclient.Call, id string, params stripeclient.ProductParams, known bool) (string, error) {
	if known {
		_, err := sc.UpdateProduct(ctx, call, id, params)
		if !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return ActionUpdate, err
		}
	}
	params.ID = id
	_, err := sc.CreateProduct(ctx, call, params)
	if stripeclient.IsClass(err, stripeclient.ClassAlreadyExists) {
		params.ID = ""
		_, err = sc.UpdateProduct(ctx, call, id, params)
		return ActionUpdate, err
	}
	return ActionCreate, err
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// archiveEventPrices archives every Price the sync created for a deleted
// event's tickets, and records them archived, so the tickets' own delete
// jobs (the rows cascade) find nothing left to do. It takes each ticket's
// lock after the event's, the order every job locks in.
func (d *Deps) archiveEventPrices(ctx context.Context, tx pgx.Tx, eventID, scope string, logger *slog.Logger) error {
	rows, err := tx.Query(ctx, `
		SELECT entity_id::text, connected_account_id, stripe_object_id FROM stripe_sync_state
		WHERE entity_type = 'ticket' AND parent_id = $1
		  AND stripe_object_id IS NOT NULL AND connected_account_id IS NOT NULL
		  AND fingerprint IS DISTINCT FROM $2`, eventID, fingerprintArchived)
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	type price struct{ ticketID, account, priceID string }
	prices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (price, error) {
		var p price
		return p, row.Scan(&p.ticketID, &p.account, &p.priceID)
	})
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	for _, p := range prices {
		if err := lock(ctx, tx, outbox.KindTicket, p.ticketID); err != nil {
			return err
		}
		call := stripeclient.Call{Account: p.account, IdempotencyScope: scope}
		if _, err := d.Stripe.ArchivePrice(ctx, call, p.priceID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE stripe_sync_state SET fingerprint = $3, synced_at = now()
			WHERE entity_type = 'ticket' AND entity_id = $1 AND stripe_object_id = $2`,
			p.ticketID, p.priceID, fingerprintArchived); err != nil {
			return fmt.Errorf("record price %s archived: %w", p.priceID, err)
		}
		logger.Debug("archived the deleted event's price", slog.String("price", p.priceID))
	}
	return nil
}

// enqueueTicketsOffAccount enqueues the event's tickets whose Price is not
// recorded on account, inside tx, through River's client (deduplicated
// against their waiting jobs).
func enqueueTicketsOffAccount(ctx context.Context, tx pgx.Tx, eventID, account string) error {
	rows, err := tx.Query(ctx, `
		SELECT t.id::text FROM event_tickets t
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = t.id
		WHERE t.event_id = $1 AND s.connected_account_id IS DISTINCT FROM $2`, eventID, account)
	if err != nil {
		return fmt.Errorf("find the event's tickets: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return err
	}
	entities := make([]outbox.Entity, len(ids))
	for i, id := range ids {
		entities[i] = outbox.Entity{Kind: outbox.KindTicket, ID: id}
	}
	_, err = outbox.Enqueue(ctx, river.ClientFromContext[pgx.Tx](ctx), tx, entities...)
	return err
}
