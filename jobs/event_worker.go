package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	return run(withLane(ctx, job.Priority), w.deps.runner(), job, entityRef{outbox.KindEvent, id},
		func(ctx context.Context, conn *pgx.Conn, logger *slog.Logger) (*outcome, error) {
			batch := &pgx.Batch{}
			batch.Queue(lockSQL, lockKey(outbox.KindEvent, id))
			batch.Queue(intentEventSQL, id)
			load := queueLoadEvent(batch, id)
			if err := conn.SendBatch(ctx, batch).Close(); err != nil {
				return nil, fmt.Errorf("lock and load event %s: %w", id, err)
			}
			return w.deps.syncProduct(ctx, conn, id, load.ev, load.st, "", logger), nil
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
	// accounts may hold objects not yet known archived (see the column).
	accounts []string
}

// staleAccounts are the accounts other than current that may still hold
// this entity's objects.
func (st *syncState) staleAccounts(current string) []string {
	var out []string
	for _, a := range append([]string{st.account}, st.accounts...) {
		if a != "" && a != current && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// intentEventSQL records, before any write, the account the event's
// Product is about to be written to (its organisation's), committed on its
// own, so a Product created by a write whose response was lost, or by a job
// killed before it recorded anything, is still found when the event is
// deleted or moves account. It writes nothing when the account is listed.
const intentEventSQL = `
	INSERT INTO stripe_sync_state AS s (entity_type, entity_id, accounts)
	SELECT 'event', e.event_id, ARRAY[o.stripe_onbehalfof]
	FROM events e JOIN organisations o ON o.organisation_id = e.organisation_id
	WHERE e.event_id = $1 AND coalesce(o.stripe_onbehalfof, '') <> ''
	ON CONFLICT (entity_type, entity_id) DO UPDATE SET accounts = s.accounts || EXCLUDED.accounts
	WHERE NOT (EXCLUDED.accounts[1] = ANY (s.accounts))`

// eventLoad is filled in when its batch is sent. ev is nil when the row is
// gone.
type eventLoad struct {
	ev *eventRow
	st *syncState
}

// queueLoadEvent reads the event, its organisation's account and its sync
// state in one statement, so the version read matches the row read.
func queueLoadEvent(batch *pgx.Batch, id string) *eventLoad {
	load := &eventLoad{st: &syncState{}}
	batch.Queue(`
		SELECT coalesce(s.wanted_version, 0), coalesce(s.connected_account_id, ''),
		       coalesce(s.stripe_object_id, ''), coalesce(s.fingerprint, ''), coalesce(s.accounts, '{}'),
		       e.event_id IS NOT NULL, coalesce(e.organisation_id::text, ''), e.parent_event_id::text,
		       e.title, e.description, e.type, e.slug, e.event_start, e.event_end, e.image_url,
		       e.is_published, e.stripe_product_id, o.stripe_onbehalfof
		FROM (SELECT $1::uuid AS id) k
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'event' AND s.entity_id = k.id
		LEFT JOIN events e ON e.event_id = k.id
		LEFT JOIN organisations o ON o.organisation_id = e.organisation_id`, id,
	).QueryRow(func(row pgx.Row) error {
		var (
			ev      eventRow
			present bool
			st      = load.st
		)
		if err := row.Scan(&st.wanted, &st.account, &st.objectID, &st.fingerprint, &st.accounts,
			&present, &ev.OrganisationID, &ev.ParentEventID,
			&ev.Title, &ev.Description, &ev.Type, &ev.Slug, &ev.EventStart, &ev.EventEnd, &ev.ImageURL,
			&ev.IsPublished, &ev.StripeProductID, &ev.Account); err != nil {
			return fmt.Errorf("load event %s: %w", id, err)
		}
		if present {
			ev.EventID = id
			load.ev = &ev
		}
		return nil
	})
	return load
}

// syncProduct makes the event's Product match ev (nil: the row is gone).
// A ticket job ensuring its parent passes its own id as askingTicket, so a
// new Product enqueues the event's other tickets, not the asking one.
func (d *Deps) syncProduct(ctx context.Context, conn *pgx.Conn, id string, ev *eventRow, st *syncState, askingTicket string, logger *slog.Logger) *outcome {
	o := &outcome{version: st.wanted, account: st.account, objectID: st.objectID}
	scope := fmt.Sprintf("event:%s:v%d", id, st.wanted)

	if ev == nil {
		everywhere := st.staleAccounts("")
		if len(everywhere) == 0 {
			return o.skip(ActionDelete, "event row is gone and nothing was ever pushed to Stripe")
		}
		if st.fingerprint == fingerprintArchived && len(st.accounts) == 0 {
			return o.succeed(ActionUnchanged, st.account, st.objectID, fingerprintArchived)
		}
		ids := uniqueNonEmpty(st.objectID, ProductID(id))
		for _, account := range everywhere {
			if err := d.archiveProducts(ctx, account, ids, scope); err != nil {
				return o.fail(ActionDelete, err)
			}
		}
		if err := d.archiveEventPrices(ctx, conn, o, id, scope, logger); err != nil {
			return o.fail(ActionDelete, err)
		}
		o.accounts = []string{}
		return o.succeed(ActionDelete, firstNonEmpty(st.account, everywhere[0]), ids[0], fingerprintArchived)
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
		o.pre = append(o.pre, stmt{
			sql:  `UPDATE events SET stripe_product_id = $2 WHERE event_id = $1 AND stripe_product_id IS DISTINCT FROM $2`,
			args: []any{id, productID},
		})
	}
	stale := st.staleAccounts(account)
	known := st.account == account && st.objectID == productID
	if known && st.fingerprint == fp && len(stale) == 0 {
		return o.succeed(ActionUnchanged, account, productID, fp)
	}

	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	action := ActionUnchanged
	if !known || st.fingerprint != fp {
		action, err = ensureProduct(ctx, d.Stripe, call, productID, params, known)
	}
	o.account, o.objectID = account, productID
	if err != nil {
		return o.fail(action, err)
	}
	// The organisation moved to another account: the old Products must stop
	// selling. A transient failure retries the job; an account that refuses
	// us (it may be disconnected already) is given up, with a warning.
	for _, old := range stale {
		if err := d.archiveProducts(ctx, old, uniqueNonEmpty(st.objectID, productID), scope); err != nil {
			if transient(err) {
				return o.fail(ActionArchive, err)
			}
			logger.Warn("could not archive the Product on the previous account",
				slog.String("previous_account", old), slog.String("error", err.Error()))
		}
	}
	if action == ActionUnchanged {
		action = ActionArchive
	}
	if action == ActionCreate {
		// A Product new on this account (first sync, a fixed title, a new
		// connected account): the tickets follow it there.
		o.pre = append(o.pre, enqueueTicketsOffAccount(id, account, askingTicket, laneOf(ctx)))
	}
	o.accounts = []string{account}
	return o.succeed(action, account, productID, fp)
}

// archiveProducts archives each id on account; one that does not exist
// there is fine.
func (d *Deps) archiveProducts(ctx context.Context, account string, ids []string, scope string) error {
	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	for _, id := range ids {
		if _, err := d.Stripe.ArchiveProduct(ctx, call, id); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return err
		}
	}
	return nil
}

// transient reports whether err says nothing lasting about the request: a
// network error, a 5xx or a 429.
func transient(err error) bool {
	return stripeclient.IsClass(err, stripeclient.ClassRetryable) || stripeclient.IsClass(err, stripeclient.ClassRateLimited)
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

func uniqueNonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// archiveEventPrices archives every Price the sync created for a deleted
// event's tickets, wherever they may be (see archiveTicketPrices), and has the
// tickets recorded archived with the event, so their own delete jobs (the
// rows cascade) find nothing left to do. It takes each ticket's lock after
// the event's, the order every job locks in.
func (d *Deps) archiveEventPrices(ctx context.Context, conn *pgx.Conn, o *outcome, eventID, scope string, logger *slog.Logger) error {
	rows, err := conn.Query(ctx, `
		SELECT entity_id::text, coalesce(connected_account_id, ''), coalesce(stripe_object_id, ''),
		       coalesce(fingerprint, ''), accounts
		FROM stripe_sync_state
		WHERE entity_type = 'ticket' AND parent_id = $1
		  AND (fingerprint IS DISTINCT FROM $2 OR cardinality(accounts) > 0)`, eventID, fingerprintArchived)
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	type ticket struct {
		id string
		st syncState
	}
	tickets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ticket, error) {
		var t ticket
		return t, row.Scan(&t.id, &t.st.account, &t.st.objectID, &t.st.fingerprint, &t.st.accounts)
	})
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	for _, t := range tickets {
		if _, err := conn.Exec(ctx, lockSQL, lockKey(outbox.KindTicket, t.id)); err != nil {
			return fmt.Errorf("lock ticket %s: %w", t.id, err)
		}
		if err := d.archiveTicketPrices(ctx, t.id, &t.st, t.st.staleAccounts(""), scope); err != nil {
			return err
		}
		o.pre = append(o.pre, stmt{
			sql: `UPDATE stripe_sync_state SET fingerprint = $2, accounts = '{}', synced_at = now()
				WHERE entity_type = 'ticket' AND entity_id = $1`,
			args: []any{t.id, fingerprintArchived},
		})
		logger.Debug("archived the deleted event's price", slog.String("ticket_id", t.id))
	}
	return nil
}

// enqueueTicketsOffAccount enqueues, with the outcome, the event's tickets
// whose Price is not recorded on account, through the triggers' set-based
// SQL function (so River's uniqueness dedupes them against waiting jobs), in
// the lane of the job asking (priority): a backfill's event must not lift
// its tickets' bulk jobs into the live lane.
func enqueueTicketsOffAccount(eventID, account, except string, priority int) stmt {
	return stmt{
		sql: `
			SELECT stripe_sync_enqueue_many('ticket', array_agg(t.id ORDER BY t.id), $4)
			FROM event_tickets t
			LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = t.id
			WHERE t.event_id = $1 AND s.connected_account_id IS DISTINCT FROM $2 AND t.id::text <> $3`,
		args: []any{eventID, account, except, priority},
	}
}

// laneKey carries the running job's River priority in its context.
type laneKey struct{}

// withLane records the running job's priority, so that the jobs it enqueues
// stay in its lane.
func withLane(ctx context.Context, priority int) context.Context {
	return context.WithValue(ctx, laneKey{}, priority)
}

// laneOf is the priority withLane recorded; the live lane if none.
func laneOf(ctx context.Context) int {
	if p, ok := ctx.Value(laneKey{}).(int); ok && p > 0 {
		return p
	}
	return outbox.PriorityLive
}
