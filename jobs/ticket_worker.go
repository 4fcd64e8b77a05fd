package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// truncatedMarker ends a metadata value cut to Stripe's 500 characters, so
// nobody mistakes a cut value for the whole.
const truncatedMarker = "…[truncated]"

// LookupKey is the lookup_key of a ticket's current Price: whatever happened
// (a lost response, a crash), the Price holding it is the ticket's.
func LookupKey(ticketID string) string { return "lodgetix_ticket_" + ticketID }

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
	return run(ctx, w.deps.runner(), job, entityRef{outbox.KindTicket, id},
		func(ctx context.Context, tx pgx.Tx, logger *slog.Logger) (*outcome, error) {
			return w.deps.syncPrice(ctx, tx, id, logger)
		})
}

// NextRetry caps the backoff as EventWorker's does.
func (w *TicketWorker) NextRetry(job *river.Job[outbox.TicketArgs]) time.Time {
	return nextRetry(job.Attempt)
}

type ticketRow struct {
	ID            string
	EventID       string
	Name          string
	Price         *string
	Eligibility   []byte
	TotalCapacity *int32
	StripePriceID *string
}

// loadTicket reads the ticket and its sync state; ticket is nil when the row
// is gone. parent is the event the ticket hangs off (from the row, or from
// the state when the row is gone).
func loadTicket(ctx context.Context, tx pgx.Tx, id string) (*ticketRow, *syncState, string, error) {
	var (
		st      syncState
		t       ticketRow
		present bool
		parent  string
	)
	err := tx.QueryRow(ctx, `
		SELECT coalesce(s.wanted_version, 0), coalesce(s.connected_account_id, ''),
		       coalesce(s.stripe_object_id, ''), coalesce(s.fingerprint, ''),
		       coalesce(t.event_id::text, s.parent_id::text, ''),
		       t.id IS NOT NULL, coalesce(t.name, ''), t.price::text, t.eligibility_criteria::text,
		       t.total_capacity, t.stripe_price_id
		FROM (SELECT $1::uuid AS id) k
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = k.id
		LEFT JOIN event_tickets t ON t.id = k.id`, id,
	).Scan(&st.wanted, &st.account, &st.objectID, &st.fingerprint, &parent,
		&present, &t.Name, &t.Price, &t.Eligibility, &t.TotalCapacity, &t.StripePriceID)
	if err != nil {
		return nil, nil, "", fmt.Errorf("load ticket %s: %w", id, err)
	}
	if !present {
		return nil, &st, parent, nil
	}
	t.ID, t.EventID = id, parent
	return &t, &st, parent, nil
}

// syncPrice makes the ticket's Price match its row. It locks the parent event
// first (every job locks event before ticket), ensures the event's Product,
// then reconciles the Price.
func (d *Deps) syncPrice(ctx context.Context, tx pgx.Tx, id string, logger *slog.Logger) (*outcome, error) {
	// Every job locks an event before its tickets, so read the parent
	// first, take both locks in that order, and read again under them.
	_, _, parent, err := loadTicket(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := lockEventThenTicket(ctx, tx, parent, id); err != nil {
		return nil, err
	}
	t, st, parent, err := loadTicket(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	o := &outcome{version: st.wanted, account: st.account, objectID: st.objectID, parentID: parent}
	scope := fmt.Sprintf("ticket:%s:v%d", id, st.wanted)

	if t == nil {
		if st.objectID == "" {
			return o.skip(ActionDelete, "ticket row is gone and nothing was ever pushed to Stripe"), nil
		}
		if st.fingerprint == fingerprintArchived {
			return o.succeed(ActionUnchanged, st.account, st.objectID, fingerprintArchived), nil
		}
		call := stripeclient.Call{Account: st.account, IdempotencyScope: scope}
		if _, err := d.Stripe.ArchivePrice(ctx, call, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return o.fail(ActionDelete, err), nil
		}
		return o.succeed(ActionDelete, st.account, st.objectID, fingerprintArchived), nil
	}

	// The parent Product first, read and (if needed) written under the
	// event's lock, so the Price never hangs off a stale or missing Product.
	ev, evState, err := loadEvent(ctx, tx, parent)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return o.skip(ActionSync, fmt.Sprintf("event %s is gone", parent)), nil
	}
	account := deref(ev.Account)
	if account == "" {
		return o.skip(ActionSync, fmt.Sprintf("organisation %s has no connected Stripe account", ev.OrganisationID)), nil
	}
	evOutcome := d.syncProduct(ctx, tx, parent, ev, evState, logger)
	if evOutcome.err != nil {
		return o.fail(ActionSync, fmt.Errorf("event %s: %w", parent, evOutcome.err)), nil
	}
	if err := lockEventRow(ctx, tx, parent); err != nil {
		return nil, err
	}
	if err := recordParent(ctx, tx, parent, evOutcome); err != nil {
		return nil, err
	}
	productID := evOutcome.objectID

	params, err := d.priceParams(t, productID)
	if err != nil {
		return o.fail(ActionSync, err), nil
	}
	immutable, fp := priceFingerprints(params)
	known := st.account == account && st.objectID != ""
	if known && st.fingerprint == fp {
		o.writeBack = priceWriteBack(t, st.objectID)
		return o.succeed(ActionUnchanged, account, st.objectID, fp), nil
	}

	call := stripeclient.Call{Account: account, IdempotencyScope: scope}
	priceID, action, err := d.ensurePrice(ctx, call, st, known, params, immutable)
	o.account = account
	if err != nil {
		return o.fail(action, err), nil
	}
	if priceID != st.objectID && st.objectID != "" {
		// The old Price (a changed amount, or the previous account's) stops
		// selling. On another account this is best effort when the account
		// refuses us (it may be disconnected already); a transient failure
		// is retried, or the old Price stays on sale for good.
		old := stripeclient.Call{Account: st.account, IdempotencyScope: scope}
		if _, err := d.Stripe.ArchivePrice(ctx, old, st.objectID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			if st.account == account || transient(err) {
				return o.fail(ActionArchive, err), nil
			}
			logger.Warn("could not archive the Price on the previous account",
				slog.String("previous_account", st.account), slog.String("error", err.Error()))
		}
	}
	o.writeBack = priceWriteBack(t, priceID)
	return o.succeed(action, account, priceID, fp), nil
}

func priceWriteBack(t *ticketRow, priceID string) *writeBack {
	if deref(t.StripePriceID) == priceID {
		return nil
	}
	return &writeBack{
		sql: `UPDATE event_tickets SET stripe_price_id = $2 WHERE id = $1 AND stripe_price_id IS DISTINCT FROM $2`,
		id:  t.ID, val: priceID,
	}
}

// ensurePrice brings the ticket's Price in step and returns its id. A Price
// known on this account with the same amount, currency and product is
// updated in place (nickname, metadata). Otherwise the ticket's lookup key
// finds whatever Price an earlier attempt created (its response may have
// been lost): adopted if its immutable fields match, else a new Price takes
// the lookup key over.
func (d *Deps) ensurePrice(ctx context.Context, call stripeclient.Call, st *syncState, known bool,
	params stripeclient.PriceParams, immutable string,
) (string, string, error) {
	if known && strings.HasPrefix(st.fingerprint, immutable+":") {
		_, err := d.Stripe.UpdatePrice(ctx, call, st.objectID, params)
		if !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return st.objectID, ActionUpdate, err
		}
	}
	holder, err := d.Stripe.FindPriceByLookupKey(ctx, call, params.LookupKey)
	if err != nil {
		return "", ActionCreate, err
	}
	if holder != nil && holder.Active && holder.Product == params.Product &&
		holder.Currency == params.Currency && holder.UnitAmount == params.UnitAmount {
		if holder.Nickname != params.Nickname || !metadataEqual(holder.Metadata, params.Metadata) {
			if _, err := d.Stripe.UpdatePrice(ctx, call, holder.ID, params); err != nil {
				return "", ActionUpdate, err
			}
		}
		return holder.ID, ActionUpdate, nil
	}
	created, err := d.Stripe.CreatePrice(ctx, call, params)
	if err != nil {
		return "", ActionCreate, err
	}
	if holder != nil && holder.Active && holder.ID != st.objectID {
		// A Price this ticket no longer wants but nobody recorded (an
		// interrupted earlier change): archive it too, so one stays active.
		if _, err := d.Stripe.ArchivePrice(ctx, call, holder.ID); err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return created.ID, ActionArchive, err
		}
	}
	return created.ID, ActionCreate, nil
}

func (d *Deps) priceParams(t *ticketRow, productID string) (stripeclient.PriceParams, error) {
	amount, err := UnitAmount(deref(t.Price), d.Currency)
	if err != nil {
		return stripeclient.PriceParams{}, err
	}
	capacity := ""
	if t.TotalCapacity != nil {
		capacity = strconv.Itoa(int(*t.TotalCapacity))
	}
	return stripeclient.PriceParams{
		Product:    productID,
		Currency:   strings.ToLower(d.Currency),
		UnitAmount: amount,
		Nickname:   t.Name,
		LookupKey:  LookupKey(t.ID),
		Active:     true,
		Metadata: map[string]string{
			"ticket_id":      t.ID,
			"ticket_name":    truncateRunes(t.Name, maxMetadataValue),
			"event_id":       t.EventID,
			"eligibility":    eligibilityValue(t.Eligibility),
			"total_capacity": capacity,
		},
	}, nil
}

// eligibilityValue is the eligibility JSON, compacted, cut to Stripe's 500
// character metadata limit with a marker when it does not fit.
func eligibilityValue(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	s := buf.String()
	if len([]rune(s)) <= maxMetadataValue {
		return s
	}
	return truncateRunes(s, maxMetadataValue-len([]rune(truncatedMarker))) + truncatedMarker
}

// priceFingerprints returns the hash of what Stripe cannot change on a Price
// (amount, currency, product) and the full fingerprint, which starts with it.
func priceFingerprints(p stripeclient.PriceParams) (immutable, full string) {
	immutable = fingerprint([]any{p.Product, p.Currency, p.UnitAmount})
	return immutable, immutable + ":" + fingerprint(p)
}

func metadataEqual(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// lockEventThenTicket takes the event's lock (when the ticket has one) and
// then the ticket's, in the one order every job uses.
func lockEventThenTicket(ctx context.Context, tx pgx.Tx, eventID, ticketID string) error {
	if eventID != "" {
		if err := lock(ctx, tx, outbox.KindEvent, eventID); err != nil {
			return err
		}
	}
	return lock(ctx, tx, outbox.KindTicket, ticketID)
}

// recordParent records what a ticket job pushed for its event's Product, so
// the event's own job finds it in step. It leaves the event's versions alone:
// the event's job still owns completing its changes.
func recordParent(ctx context.Context, tx pgx.Tx, eventID string, o *outcome) error {
	if !o.pushed {
		return nil
	}
	batch := &pgx.Batch{}
	if o.writeBack != nil {
		batch.Queue(o.writeBack.sql, o.writeBack.id, o.writeBack.val)
	}
	batch.Queue(`
		INSERT INTO stripe_sync_state AS s (entity_type, entity_id, connected_account_id, stripe_object_id, fingerprint, synced_at)
		VALUES ('event', $1, $2, $3, $4, now())
		ON CONFLICT (entity_type, entity_id) DO UPDATE SET
			connected_account_id = EXCLUDED.connected_account_id, stripe_object_id = EXCLUDED.stripe_object_id,
			fingerprint = EXCLUDED.fingerprint, synced_at = now()`,
		eventID, o.account, o.objectID, o.fingerprint)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("record event %s: %w", eventID, err)
	}
	return nil
}
