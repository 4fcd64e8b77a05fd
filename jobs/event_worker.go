package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
			return w.deps.syncProduct(ctx, newDoubter(conn), id, load.ev, load.st, "", logger)
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
	// inDoubt says a write may have been applied since account, objectID
	// and fingerprint were recorded (see the column): they are what was last
	// known, not necessarily what Stripe holds.
	inDoubt bool
	// keyGeneration moves on after a 5xx (see the column).
	keyGeneration int
}

// scope is the Idempotency-Key scope of the entity's writes for the change
// it acts on: a retry of the same change sends the same keys, so Stripe
// replays what a request whose answer was lost applied, unless Stripe
// answered 5xx since (keyGeneration): it would replay that 500 for a day.
func (st *syncState) scope(kind outbox.Kind, id string) string {
	scope := fmt.Sprintf("%s:%s:v%d", kind, id, st.wanted)
	if st.keyGeneration > 0 {
		scope += fmt.Sprintf(":k%d", st.keyGeneration)
	}
	return scope
}

// needsNewKey reports whether the attempt after err must send new
// Idempotency-Keys: Stripe answered 5xx, or replayed a 5xx it stored under
// the key (stripeclient.NeedsNewKey). After a failure with no answer the
// keys stay, so Stripe replays what it may have applied.
func needsNewKey(err error) bool { return stripeclient.NeedsNewKey(err) }

// trusted reports whether what was recorded is known to be what account
// holds: the last write there was answered and recorded, so nothing needs
// reading there first.
func (st *syncState) trusted(account string) bool {
	return !st.inDoubt && st.account == account
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
		       coalesce(s.in_doubt, false), coalesce(s.key_generation, 0), e.event_id IS NOT NULL, coalesce(e.organisation_id::text, ''), e.parent_event_id::text,
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
			&st.inDoubt, &st.keyGeneration, &present, &ev.OrganisationID, &ev.ParentEventID,
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
// A ticket job ensuring its parent passes its own id as askingTicket, so the
// event's other tickets are enqueued, not the asking one. The error is a
// database failure; Stripe's are in the outcome.
func (d *Deps) syncProduct(ctx context.Context, dt *doubter, id string, ev *eventRow, st *syncState, askingTicket string, logger *slog.Logger) (*outcome, error) {
	o := &outcome{version: st.wanted, account: st.account, objectID: st.objectID}
	scope := st.scope(outbox.KindEvent, id)

	if ev == nil {
		return d.deleteProduct(ctx, dt.conn, o, id, st, scope, logger)
	}

	account := deref(ev.Account)
	if account == "" {
		return d.archiveOffAccount(ctx, dt, o, id, ev, st, scope, logger)
	}
	params, err := productParams(ev)
	if err != nil {
		var dataErr *DataError
		if errors.As(err, &dataErr) && !deref(ev.IsPublished) {
			// Nothing to show for an unpublished event, but it must not
			// stay on sale: archiving needs no name.
			return d.archiveUnpublished(ctx, dt, o, id, ev, st, account, scope, err)
		}
		return o.fail(ActionSync, err), nil
	}
	fp := productFingerprint(params)
	productID := firstNonEmpty(deref(ev.StripeProductID), st.objectID, ProductID(id))
	if productID != deref(ev.StripeProductID) {
		o.pre = append(o.pre, stmt{
			sql:  `UPDATE events SET stripe_product_id = $2 WHERE event_id = $1 AND stripe_product_id IS DISTINCT FROM $2`,
			args: []any{id, productID},
			rank: rankHostRow,
		})
	}
	stale := st.staleAccounts(account)
	known := st.account == account && st.objectID == productID
	if known && st.fingerprint == fp && len(stale) == 0 && !st.inDoubt {
		return o.succeed(ActionUnchanged, account, productID, fp), nil
	}
	if err := dt.mark(ctx, outbox.KindEvent, id, st.inDoubt); err != nil {
		return nil, err
	}

	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	action := ActionUnchanged
	// In doubt, the recorded fingerprint may not be what Stripe holds (a
	// lost write, then a change back): write the whole Product again. A
	// Product write sets every field we own, so no read is needed first.
	if !known || st.fingerprint != fp || st.inDoubt {
		// A Product id not derived from the event is the old system's:
		// it exists, most likely, so update it first.
		action, err = ensureProduct(ctx, d.Stripe, call, productID, params, known || productID != ProductID(id))
	}
	o.account, o.objectID = account, productID
	if err != nil {
		return o.fail(action, err), nil
	}
	// The organisation moved to another account: the old Products must stop
	// selling. A transient failure retries the job; an account that refuses
	// us (deauthorised) blocks nothing here: it stays in accounts and the
	// job is retried for it later (see outcome.refused).
	accounts := []string{account}
	for _, old := range stale {
		if err := d.archiveProducts(ctx, old, uniqueNonEmpty(st.objectID, productID), scope); err != nil {
			if transient(err) {
				return o.fail(ActionArchive, err), nil
			}
			accounts = append(accounts, old)
			o.refused = append(o.refused, old)
			logger.Warn("could not archive the Product on the previous account",
				slog.String("previous_account", old), slog.String("error", err.Error()))
		}
	}
	if action == ActionUnchanged {
		action = ActionArchive
	}
	// The tickets follow the Product: onto a new account (a move, A -> B ->
	// A, a create answered resource_already_exists), and any whose last
	// change was handled without being pushed (held up by this event).
	o.pre = append(o.pre, lockEventRow(id), enqueueTicketsBehind(id, account, askingTicket, laneOf(ctx)))
	o.accounts = accounts
	return o.succeed(action, account, productID, fp), nil
}

// deleteProduct archives a deleted event's Product and its tickets' Prices on
// every account that may hold them. An account that refuses us
// (deauthorised) does not stop the others: they are cleaned, and the job
// then fails with the refusal so River retries the refusing account later,
// which alone stays listed in accounts.
func (d *Deps) deleteProduct(ctx context.Context, conn *pgx.Conn, o *outcome, id string, st *syncState, scope string, logger *slog.Logger) (*outcome, error) {
	everywhere := st.staleAccounts("")
	if len(everywhere) == 0 {
		return o.skip(ActionDelete, "event row is gone and nothing was ever pushed to Stripe"), nil
	}
	if st.fingerprint == fingerprintArchived && len(st.accounts) == 0 {
		return o.succeed(ActionUnchanged, st.account, st.objectID, fingerprintArchived), nil
	}
	ids := uniqueNonEmpty(st.objectID, ProductID(id))
	var refused []string
	var refusal error
	for _, account := range everywhere {
		if err := d.archiveProducts(ctx, account, ids, scope); err != nil {
			if transient(err) {
				return o.fail(ActionDelete, err), nil
			}
			refused, refusal = append(refused, account), err
			logger.Warn("could not archive the deleted event's Product; will retry",
				slog.String("unreachable_account", account), slog.String("error", err.Error()))
		}
	}
	if err := d.archiveEventPrices(ctx, conn, o, id, scope, refused, logger); err != nil {
		return o.fail(ActionDelete, err), nil
	}
	if len(refused) > 0 {
		o.accounts = refused
		o.account = refused[0]
		return o.fail(ActionDelete, fmt.Errorf("archived everywhere but on %s: %w", strings.Join(refused, ", "), refusal)), nil
	}
	o.accounts = []string{}
	return o.succeed(ActionDelete, firstNonEmpty(st.account, everywhere[0]), ids[0], fingerprintArchived), nil
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

// archiveOffAccount handles an event whose organisation has no connected
// account (stripe_onbehalfof set to NULL): its Product is archived wherever
// it may be, so nothing stays on sale on an account the organisation left.
// An account that refuses us stays listed, to be tried by the event's next
// round.
func (d *Deps) archiveOffAccount(ctx context.Context, dt *doubter, o *outcome, id string, ev *eventRow, st *syncState, scope string, logger *slog.Logger) (*outcome, error) {
	reason := fmt.Sprintf("organisation %s has no connected Stripe account", ev.OrganisationID)
	everywhere := st.staleAccounts("")
	if len(everywhere) == 0 || (st.fingerprint == fingerprintArchived && len(st.accounts) == 0) {
		return o.skip(ActionSync, reason), nil
	}
	if err := dt.mark(ctx, outbox.KindEvent, id, st.inDoubt); err != nil {
		return nil, err
	}
	ids := uniqueNonEmpty(st.objectID, deref(ev.StripeProductID), ProductID(id))
	refused := []string{}
	for _, account := range everywhere {
		if err := d.archiveProducts(ctx, account, ids, scope); err != nil {
			if transient(err) {
				return o.fail(ActionArchive, err), nil
			}
			refused = append(refused, account)
			logger.Warn("could not archive the Product on the organisation's previous account",
				slog.String("previous_account", account), slog.String("error", err.Error()))
		}
	}
	o.accounts, o.refused = refused, refused
	o.succeed(ActionArchive, firstNonEmpty(st.account, everywhere[0]), firstNonEmpty(st.objectID, ids[0]), fingerprintArchived)
	o.message = reason + ": archived its Product on " + strings.Join(everywhere, ", ")
	return o, nil
}

// archiveUnpublished archives the Product of an unpublished event whose row
// cannot be mapped (a blank title): an unpublish must take it off sale
// whatever else is wrong with the row. The data error is logged with it.
func (d *Deps) archiveUnpublished(ctx context.Context, dt *doubter, o *outcome, id string, ev *eventRow, st *syncState, account, scope string, dataErr error) (*outcome, error) {
	productID := firstNonEmpty(deref(ev.StripeProductID), st.objectID, ProductID(id))
	everywhere := uniqueNonEmpty(append([]string{account}, st.staleAccounts(account)...)...)
	if st.account == "" && len(st.accounts) == 0 && deref(ev.StripeProductID) == "" {
		return o.fail(ActionSync, dataErr), nil // nothing was ever pushed: nothing to archive
	}
	if err := dt.mark(ctx, outbox.KindEvent, id, st.inDoubt); err != nil {
		return nil, err
	}
	for _, acct := range everywhere {
		if err := d.archiveProducts(ctx, acct, uniqueNonEmpty(productID, st.objectID), scope); err != nil {
			return o.fail(ActionArchive, err), nil
		}
	}
	o.accounts = []string{account}
	o.succeed(ActionArchive, account, productID, fingerprintArchived)
	o.message = "unpublished; its Product is archived (" + dataErr.Error() + ")"
	return o, nil
}

// archiveEventPrices archives every Price the sync created for a deleted
// event's tickets, wherever they may be (see archiveTicketPrices), except on
// the refused accounts, and has the tickets recorded archived with the
// event, so their own delete jobs (the rows cascade) find nothing left to
// do. A ticket with a Price on a refused account keeps that account listed,
// for the retry. It takes each ticket's lock after the event's, the order
// every job locks in.
func (d *Deps) archiveEventPrices(ctx context.Context, conn *pgx.Conn, o *outcome, eventID, scope string, refused []string, logger *slog.Logger) error {
	rows, err := conn.Query(ctx, `
		SELECT entity_id::text, coalesce(connected_account_id, ''), coalesce(stripe_object_id, ''),
		       coalesce(fingerprint, ''), accounts, in_doubt
		FROM stripe_sync_state
		WHERE entity_type = 'ticket' AND parent_id = $1
		  AND (fingerprint IS DISTINCT FROM $2 OR cardinality(accounts) > 0)
		ORDER BY entity_id`, eventID, fingerprintArchived)
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	type ticket struct {
		id string
		st syncState
	}
	tickets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ticket, error) {
		var t ticket
		return t, row.Scan(&t.id, &t.st.account, &t.st.objectID, &t.st.fingerprint, &t.st.accounts, &t.st.inDoubt)
	})
	if err != nil {
		return fmt.Errorf("find the event's prices: %w", err)
	}
	for _, t := range tickets {
		if _, err := conn.Exec(ctx, lockSQL, lockKey(outbox.KindTicket, t.id)); err != nil {
			return fmt.Errorf("lock ticket %s: %w", t.id, err)
		}
		var reachable, left []string
		for _, account := range t.st.staleAccounts("") {
			if slices.Contains(refused, account) {
				left = append(left, account)
			} else {
				reachable = append(reachable, account)
			}
		}
		if err := d.archiveTicketPrices(ctx, t.id, &t.st, reachable, scope); err != nil {
			if transient(err) {
				return err
			}
			// This account refuses the ticket's Price but not the event's
			// Product: it is retried with the ticket.
			left = append(left, reachable...)
		}
		if len(left) > 0 {
			o.pre = append(o.pre, stmt{
				sql:  `UPDATE stripe_sync_state SET accounts = $2 WHERE entity_type = 'ticket' AND entity_id = $1`,
				args: []any{t.id, left},
				rank: rankTicketState,
			})
			continue
		}
		o.pre = append(o.pre, stmt{
			sql: `UPDATE stripe_sync_state SET fingerprint = $2, accounts = '{}', in_doubt = false, synced_at = now()
				WHERE entity_type = 'ticket' AND entity_id = $1`,
			args: []any{t.id, fingerprintArchived},
			rank: rankTicketState,
		})
		logger.Debug("archived the deleted event's price", slog.String("ticket_id", t.id))
	}
	return nil
}

// lockEventRow takes the event's row lock at the start of a round's record,
// before any ticket's state row: a host DELETE of the event takes the event
// row first, then its tickets' state rows in its own order, so holding the
// event row first makes the two wait for each other instead of deadlocking.
// FOR KEY SHARE conflicts with the DELETE but not with the host's updates.
func lockEventRow(eventID string) stmt {
	return stmt{sql: `SELECT 1 FROM events WHERE event_id = $1 FOR KEY SHARE`, args: []any{eventID}, rank: rankHostRow}
}

// enqueueTicketsBehind enqueues, with the outcome, the event's tickets that
// must follow its Product: those whose Price is not recorded on account or
// was archived (their organisation had no account), and those whose latest
// change was handled without being pushed (their job was cancelled because
// the event could not sync). It goes through the triggers' set-based SQL
// function, so River's uniqueness dedupes waiting jobs, in the lane of the
// job asking (priority): a backfill's event must not lift its tickets' bulk
// jobs into the live lane. Run it under lockEventRow.
func enqueueTicketsBehind(eventID, account, except string, priority int) stmt {
	return stmt{
		sql: `
			SELECT stripe_sync_enqueue_many('ticket', array_agg(t.id ORDER BY t.id), $4)
			FROM event_tickets t
			LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = t.id
			WHERE t.event_id = $1 AND t.id::text <> $3
			  AND (s.connected_account_id IS DISTINCT FROM $2 OR s.fingerprint = 'archived'
			       OR (s.pushed_version < s.wanted_version AND s.handled_version >= s.wanted_version))`,
		args: []any{eventID, account, except, priority},
		rank: rankTicketState,
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
