package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// TicketWorker makes a ticket type's Stripe Price match its row, after
// ensuring its event's Product under the event's lock.
type TicketWorker struct {
	river.WorkerDefaults[outbox.TicketArgs]
	deps *Deps
}

// Work reconciles one ticket type.
func (w *TicketWorker) Work(ctx context.Context, job *river.Job[outbox.TicketArgs]) error {
	id, err := outbox.ParseID(job.Args.TicketID)
	if err != nil {
		return river.JobCancel(err)
	}
	return run(withLane(ctx, job.Priority), w.deps.runner(), job, entityRef{outbox.KindTicket, id},
		func(ctx context.Context, conn *pgx.Conn, logger *slog.Logger) (*outcome, error) {
			return w.deps.syncPrice(ctx, conn, id, logger)
		})
}

// NextRetry caps the backoff as EventWorker's does.
func (w *TicketWorker) NextRetry(job *river.Job[outbox.TicketArgs]) time.Time {
	return nextRetry(job.Attempt)
}

// intentTicketSQL is intentEventSQL for a ticket and its event (whose
// Product the ticket's job may write too), event first: the host's order
// (see lockRank).
const intentTicketSQL = `
	INSERT INTO stripe_sync_state AS s (entity_type, entity_id, accounts)
	SELECT x.entity_type, x.entity_id, ARRAY[o.stripe_onbehalfof]
	FROM event_tickets t
	JOIN events e ON e.event_id = t.event_id
	JOIN organisations o ON o.organisation_id = e.organisation_id
	CROSS JOIN LATERAL (VALUES (1, 'event', e.event_id), (2, 'ticket', t.id)) x(ord, entity_type, entity_id)
	WHERE t.id = $1 AND coalesce(o.stripe_onbehalfof, '') <> ''
	ORDER BY x.ord
	ON CONFLICT (entity_type, entity_id) DO UPDATE SET accounts = s.accounts || EXCLUDED.accounts
	WHERE NOT (EXCLUDED.accounts[1] = ANY (s.accounts))`

// ticketLoad is filled in when its batch is sent: t is nil when the row is
// gone; parent is the event the ticket hangs off (from the row, or from the
// state when the row is gone).
type ticketLoad struct {
	t      *ticketRow
	st     *syncState
	parent string
}

func queueLoadTicket(batch *pgx.Batch, id string) *ticketLoad {
	load := &ticketLoad{st: &syncState{}}
	batch.Queue(`
		SELECT coalesce(s.wanted_version, 0), coalesce(s.connected_account_id, ''),
		       coalesce(s.stripe_object_id, ''), coalesce(s.fingerprint, ''), coalesce(s.accounts, '{}'),
		       coalesce(s.in_doubt, false), coalesce(s.key_generation, 0), coalesce(t.event_id::text, s.parent_id::text, ''),
		       t.id IS NOT NULL, coalesce(t.name, ''), t.price::text, t.eligibility_criteria::text,
		       t.total_capacity, t.stripe_price_id
		FROM (SELECT $1::uuid AS id) k
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = k.id
		LEFT JOIN event_tickets t ON t.id = k.id`, id,
	).QueryRow(func(row pgx.Row) error {
		var (
			t       ticketRow
			present bool
			st      = load.st
		)
		if err := row.Scan(&st.wanted, &st.account, &st.objectID, &st.fingerprint, &st.accounts, &st.inDoubt, &st.keyGeneration, &load.parent,
			&present, &t.Name, &t.Price, &t.Eligibility, &t.TotalCapacity, &t.StripePriceID); err != nil {
			return fmt.Errorf("load ticket %s: %w", id, err)
		}
		if present {
			t.ID, t.EventID = id, load.parent
			load.t = &t
		}
		return nil
	})
	return load
}

// syncPrice makes the ticket's Price match its row. It locks the parent event
// first (every job locks event before ticket), ensures the event's Product,
// then reconciles the Price.
func (d *Deps) syncPrice(ctx context.Context, conn *pgx.Conn, id string, logger *slog.Logger) (*outcome, error) {
	// Every job locks an event before its tickets, so find the parent first,
	// then take both locks in that order and read everything under them.
	var parent string
	if err := conn.QueryRow(ctx, `
		SELECT coalesce((SELECT event_id::text FROM event_tickets WHERE id = $1),
		                (SELECT parent_id::text FROM stripe_sync_state WHERE entity_type = 'ticket' AND entity_id = $1), '')`,
		id).Scan(&parent); err != nil {
		return nil, fmt.Errorf("find ticket %s's event: %w", id, err)
	}
	batch := &pgx.Batch{}
	if parent != "" {
		batch.Queue(lockSQL, lockKey(outbox.KindEvent, parent))
	}
	batch.Queue(lockSQL, lockKey(outbox.KindTicket, id))
	batch.Queue(intentTicketSQL, id)
	tl := queueLoadTicket(batch, id)
	var el *eventLoad
	if parent != "" {
		el = queueLoadEvent(batch, parent)
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("lock and load ticket %s: %w", id, err)
	}
	if tl.parent != parent {
		// The ticket moved to another event between the two reads: lock
		// that one too (out of order; PostgreSQL reports a deadlock, if one
		// forms, as an error and River retries).
		parent = tl.parent
		batch = &pgx.Batch{}
		batch.Queue(lockSQL, lockKey(outbox.KindEvent, parent))
		el = queueLoadEvent(batch, parent)
		if err := conn.SendBatch(ctx, batch).Close(); err != nil {
			return nil, fmt.Errorf("lock and load event %s: %w", parent, err)
		}
	}
	t, st := tl.t, tl.st
	dt := newDoubter(conn)
	o := &outcome{version: st.wanted, account: st.account, objectID: st.objectID, parentID: parent}
	scope := st.scope(outbox.KindTicket, id)

	if t == nil {
		everywhere := st.staleAccounts("")
		if len(everywhere) == 0 {
			return o.skip(ActionDelete, "ticket row is gone and nothing was ever pushed to Stripe"), nil
		}
		if st.fingerprint == fingerprintArchived && len(st.accounts) == 0 {
			return o.succeed(ActionUnchanged, st.account, st.objectID, fingerprintArchived), nil
		}
		refused, err := d.archiveTicketPricesPast(ctx, id, st, everywhere, scope, logger)
		if err != nil {
			return o.fail(ActionDelete, err), nil
		}
		if len(refused) > 0 {
			// The other accounts are clean; River retries the refusing one.
			o.accounts = refused
			return o.fail(ActionDelete, fmt.Errorf("archived everywhere but on %s: %w", strings.Join(refused, ", "), errRefused)), nil
		}
		o.accounts = []string{}
		return o.succeed(ActionDelete, firstNonEmpty(st.account, everywhere[0]), st.objectID, fingerprintArchived), nil
	}

	// The parent Product first, read and (if needed) written under the
	// event's lock, so the Price never hangs off a stale or missing Product.
	if el == nil || el.ev == nil {
		return o.skip(ActionSync, fmt.Sprintf("event %s is gone", parent)), nil
	}
	account := deref(el.ev.Account)
	if account == "" {
		return d.archivePriceOffSale(ctx, dt, o, t, st, scope,
			fmt.Sprintf("organisation %s has no connected Stripe account", el.ev.OrganisationID), nil, logger)
	}
	evOutcome, err := d.syncProduct(ctx, dt, parent, el.ev, el.st, id, logger)
	if err != nil {
		return nil, err
	}
	if evOutcome.err != nil {
		if needsNewKey(evOutcome.err) {
			o.pre = append(o.pre, stmt{
				sql:  `UPDATE stripe_sync_state SET key_generation = key_generation + 1 WHERE entity_type = 'event' AND entity_id = $1`,
				args: []any{parent},
				rank: rankEventState,
			})
		}
		return o.fail(ActionSync, fmt.Errorf("event %s: %w", parent, evOutcome.err)), nil
	}
	recordParent(o, parent, evOutcome)
	o.refused = append(o.refused, evOutcome.refused...)
	productID := evOutcome.objectID

	params, err := priceParams(t, productID, d.Currency)
	if err != nil {
		// A price that became null, negative or unrepresentable: the old
		// Price must not stay on sale at the old amount.
		return d.archivePriceOffSale(ctx, dt, o, t, st, scope, err.Error()+"; its Price is archived", err, logger)
	}
	immutable, fp := priceFingerprints(params)
	stale := st.staleAccounts(account)
	known := st.account == account && st.objectID != ""
	if known && st.fingerprint == fp && len(stale) == 0 && !st.inDoubt {
		o.pre = append(o.pre, priceWriteBack(t, st.objectID)...)
		return o.succeed(ActionUnchanged, account, st.objectID, fp), nil
	}
	if err := dt.mark(ctx, outbox.KindTicket, id, st.inDoubt); err != nil {
		return nil, err
	}

	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	priceID, action := st.objectID, ActionArchive
	switch legacy := deref(t.StripePriceID); {
	case st.objectID == "" && legacy != "":
		priceID, action, err = d.adoptLegacyPrice(ctx, call, st, legacy, params, immutable)
	case !known || st.fingerprint != fp || st.inDoubt:
		priceID, action, err = d.ensurePrice(ctx, call, st, known, params, immutable)
	}
	o.account = account
	if err != nil {
		return o.fail(action, err), nil
	}
	if known && priceID != st.objectID && (st.fingerprint != fingerprintArchived || st.inDoubt) {
		// A changed amount: the old Price stops selling.
		if _, err := d.Stripe.ArchivePrice(ctx, call, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return o.fail(ActionArchive, err), nil
		}
	}
	// The organisation moved: the old account's Prices stop selling. A
	// transient failure retries the job; an account that refuses us
	// (deauthorised) blocks nothing here: it stays in accounts and the job
	// is retried for it later (see outcome.refused).
	accounts := []string{account}
	refused, err := d.archiveTicketPricesPast(ctx, id, st, stale, scope, logger)
	if err != nil {
		return o.fail(ActionArchive, err), nil
	}
	accounts = append(accounts, refused...)
	o.refused = append(o.refused, refused...)
	o.pre = append(o.pre, priceWriteBack(t, priceID)...)
	o.accounts = accounts
	return o.succeed(action, account, priceID, fp), nil
}

// errRefused is what a job that cleaned every account but a refusing one
// fails with, so River retries it.
var errRefused = errors.New("the connected account refused us (deauthorised?)")

// archivePriceOffSale archives the ticket's Prices wherever they may be and
// records them archived: for a ticket whose organisation has no connected
// account any more, or whose price Stripe cannot represent (dataErr, which
// cancels the job and is logged with message). A ticket with nothing pushed
// is skipped (or failed with dataErr).
func (d *Deps) archivePriceOffSale(ctx context.Context, dt *doubter, o *outcome, t *ticketRow, st *syncState, scope, message string, dataErr error, logger *slog.Logger) (*outcome, error) {
	everywhere := st.staleAccounts("")
	if len(everywhere) == 0 || (st.fingerprint == fingerprintArchived && len(st.accounts) == 0 && !st.inDoubt) {
		if dataErr != nil {
			return o.fail(ActionSync, dataErr), nil
		}
		return o.skip(ActionSync, message), nil
	}
	if err := dt.mark(ctx, outbox.KindTicket, t.ID, st.inDoubt); err != nil {
		return nil, err
	}
	refused, err := d.archiveTicketPricesPast(ctx, t.ID, st, everywhere, scope, logger)
	if err != nil {
		return o.fail(ActionArchive, err), nil
	}
	o.accounts, o.refused = refused, refused
	o.succeed(ActionArchive, firstNonEmpty(st.account, everywhere[0]), st.objectID, fingerprintArchived)
	o.message = message
	if dataErr != nil {
		o.status, o.err = StatusFailed, dataErr
	}
	return o, nil
}

// archiveTicketPricesPast is archiveTicketPrices one account at a time,
// going on past an account that refuses us: it returns those accounts, or
// the first transient error.
func (d *Deps) archiveTicketPricesPast(ctx context.Context, ticketID string, st *syncState, accounts []string, scope string, logger *slog.Logger) ([]string, error) {
	var refused []string
	for _, account := range accounts {
		if err := d.archiveTicketPrices(ctx, ticketID, st, []string{account}, scope); err != nil {
			if transient(err) {
				return nil, err
			}
			refused = append(refused, account)
			logger.Warn("could not archive the ticket's Price; will retry",
				slog.String("unreachable_account", account), slog.String("error", err.Error()))
		}
	}
	return refused, nil
}

// archiveTicketPrices archives, on each account, the Price recorded for the
// ticket and, unless the record is trusted there (see syncState.trusted),
// whichever Price holds the ticket's lookup key: the one a write whose
// response was lost created, which nothing recorded.
func (d *Deps) archiveTicketPrices(ctx context.Context, ticketID string, st *syncState, accounts []string, scope string) error {
	for _, account := range accounts {
		call := stripeclient.Call{Account: account, IdempotencyScope: scope}
		archived := ""
		if account == st.account && st.objectID != "" && (st.fingerprint != fingerprintArchived || st.inDoubt) {
			if _, err := d.Stripe.ArchivePrice(ctx, call, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
				return err
			}
			archived = st.objectID
		}
		if st.trusted(account) && st.objectID != "" {
			continue
		}
		holder, err := d.Stripe.FindPriceByLookupKey(ctx, call, LookupKey(ticketID))
		if err != nil {
			return err
		}
		if holder != nil && holder.Active && holder.ID != archived {
			if _, err := d.Stripe.ArchivePrice(ctx, call, holder.ID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
				return err
			}
		}
	}
	return nil
}

// recordParent adds to the ticket's outcome what the ticket's job pushed for
// its event's Product, so the event's own job finds it in step; the event's
// versions stay the event job's to complete. The event's row lock comes
// first, as a host DELETE of the event takes it first.
func recordParent(o *outcome, eventID string, ev *outcome) {
	o.pre = append(o.pre, stmt{sql: `SELECT 1 FROM events WHERE event_id = $1 FOR NO KEY UPDATE`, args: []any{eventID}, rank: rankHostRow})
	o.pre = append(o.pre, ev.pre...)
	if ev.action == ActionUnchanged {
		return
	}
	o.pre = append(o.pre, stmt{
		rank: rankEventState,
		sql: `
			INSERT INTO stripe_sync_state AS s (entity_type, entity_id, connected_account_id, stripe_object_id,
				fingerprint, synced_at, accounts)
			VALUES ('event', $1, $2, $3, $4, now(), coalesce($5::text[], '{}'))
			ON CONFLICT (entity_type, entity_id) DO UPDATE SET
				connected_account_id = EXCLUDED.connected_account_id, stripe_object_id = EXCLUDED.stripe_object_id,
				fingerprint = EXCLUDED.fingerprint, synced_at = now(), accounts = coalesce($5::text[], s.accounts),
				in_doubt = false`,
		args: []any{eventID, ev.account, ev.objectID, ev.fingerprint, ev.accounts},
	})
}

func priceWriteBack(t *ticketRow, priceID string) []stmt {
	if deref(t.StripePriceID) == priceID {
		return nil
	}
	return []stmt{{
		sql:  `UPDATE event_tickets SET stripe_price_id = $2 WHERE id = $1 AND stripe_price_id IS DISTINCT FROM $2`,
		args: []any{t.ID, priceID},
		rank: rankHostRow,
	}}
}

// ensurePrice brings the ticket's Price in step and returns its id and the
// action logged for it (ActionCreate, ActionUpdate, ActionArchive), every
// request a change where the record can be trusted. On error, action is the
// request that failed.
//
// Trusted (not in doubt): the recorded Price is the ticket's only active one
// on this account and holds its lookup key. Same amount, currency and
// product: it is updated in place (nickname, metadata). Otherwise a new
// Price is created, taking the lookup key over, with no read first; the
// caller archives the old one.
//
// In doubt (an earlier write's answer was lost): the lookup key's holder is
// read first, as it may be a Price that nothing recorded. It is adopted if
// its amount, currency and product match; else it is archived before the
// key moves on (if the next write's answer were lost too, nothing could find
// the holder again), and the recorded Price is reused when it matches (it
// takes the key back: a change reverted to what was recorded), or a new one
// created.
func (d *Deps) ensurePrice(ctx context.Context, call stripeclient.Call, st *syncState, known bool,
	params stripeclient.PriceParams, immutable string,
) (priceID, action string, err error) {
	reusable := known && strings.HasPrefix(st.fingerprint, immutable+":")
	if !st.inDoubt {
		if reusable {
			_, err := d.Stripe.UpdatePrice(ctx, call, st.objectID, params)
			if !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
				return st.objectID, ActionUpdate, err
			}
		}
		return d.createPrice(ctx, call, params)
	}

	holder, err := d.Stripe.FindPriceByLookupKey(ctx, call, params.LookupKey)
	if err != nil {
		return "", ActionCreate, err
	}
	if holder != nil && holder.Product == params.Product &&
		holder.Currency == params.Currency && holder.UnitAmount == params.UnitAmount {
		if !holder.Active || holder.Nickname != params.Nickname || !metadataEqual(holder.Metadata, params.Metadata) {
			if _, err := d.Stripe.UpdatePrice(ctx, call, holder.ID, params); err != nil {
				return "", ActionUpdate, err
			}
		}
		return holder.ID, ActionUpdate, nil
	}
	if holder != nil && holder.Active && !(known && holder.ID == st.objectID) {
		if _, err := d.Stripe.ArchivePrice(ctx, call, holder.ID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return "", ActionArchive, err
		}
	}
	if reusable {
		// Active again, with the lookup key transferred back to it.
		_, err := d.Stripe.UpdatePrice(ctx, call, st.objectID, params)
		if !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return st.objectID, ActionUpdate, err
		}
	}
	return d.createPrice(ctx, call, params)
}

// adoptLegacyPrice handles a ticket the sync never recorded whose row holds
// a stripe_price_id from the system this project replaced (a Price without
// our lookup key, or on another Product). It is adopted when its amount,
// currency and product fit (updated in place, taking the lookup key), else
// replaced by a Price of ours and archived, so it never stays on sale
// beside ours. One read, the only one a trusted round makes, since nothing
// recorded says what that Price is.
func (d *Deps) adoptLegacyPrice(ctx context.Context, call stripeclient.Call, st *syncState, legacy string,
	params stripeclient.PriceParams, immutable string,
) (priceID, action string, err error) {
	old, err := d.Stripe.GetPrice(ctx, call, legacy)
	switch {
	case stripeclient.IsClass(err, stripeclient.ClassNotFound):
		old = nil
	case err != nil:
		return "", ActionSync, err
	case old.Product == params.Product && old.Currency == params.Currency && old.UnitAmount == params.UnitAmount:
		if _, err := d.Stripe.UpdatePrice(ctx, call, legacy, params); err != nil {
			return "", ActionUpdate, err
		}
		return legacy, ActionUpdate, nil
	}
	id, action, err := d.ensurePrice(ctx, call, st, false, params, immutable)
	if err != nil {
		return "", action, err
	}
	if old != nil && old.Active && old.ID != id {
		if _, err := d.Stripe.ArchivePrice(ctx, call, legacy); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return "", ActionArchive, err
		}
	}
	return id, action, nil
}

func (d *Deps) createPrice(ctx context.Context, call stripeclient.Call, params stripeclient.PriceParams) (priceID, action string, err error) {
	created, err := d.Stripe.CreatePrice(ctx, call, params)
	if err != nil {
		return "", ActionCreate, err
	}
	return created.ID, ActionCreate, nil
}
