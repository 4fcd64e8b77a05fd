package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// ActionDeauthorized is the action of the log row a deauthorisation writes
// for each organisation using the account. (A repair is logged by the
// entity's own job, with its usual action and a message saying what it
// repaired.)
const ActionDeauthorized = "deauthorized"

// WebhookWorker acts on one received Stripe event: a deauthorisation marks
// the account unreachable; an edit to a Product or Price the sync manages is
// compared with the entity's row and, when they differ, recorded as drift
// and the entity's job enqueued, which pushes the row's truth again. It
// sends no Stripe request itself.
type WebhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	deps *Deps
}

// Work handles the event, then completes the job in the same transaction.
// Returns the database's error, after which River retries.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		var (
			typ, account string
			object       []byte
		)
		err := tx.QueryRow(ctx, `
			SELECT type, coalesce(account, ''), object FROM stripe_sync_webhook_event WHERE event_id = $1`,
			job.Args.EventID).Scan(&typ, &account, &object)
		if errors.Is(err, pgx.ErrNoRows) {
			// Pruned before the job ran (a job waiting past the log's
			// retention): nothing left to act on.
			return river.JobCancel(fmt.Errorf("stripe event %s is no longer recorded", job.Args.EventID))
		}
		if err != nil {
			return fmt.Errorf("read stripe event %s: %w", job.Args.EventID, err)
		}
		logger := w.deps.Logger.With(slog.String("stripe_event", job.Args.EventID), slog.String("type", typ),
			slog.String("account", account))
		var obj webhookObject
		if len(object) > 0 {
			if err := json.Unmarshal(object, &obj); err != nil {
				return river.JobCancel(fmt.Errorf("decode stripe event %s: %w", job.Args.EventID, err))
			}
		}
		switch {
		case typ == stripeclient.EventAccountDeauthorized:
			err = w.deauthorize(ctx, tx, job, account, logger)
		case obj.Product != nil:
			err = w.repair(ctx, tx, job, account, outbox.KindEvent, productEntity(obj.Product), &obj, logger)
		case obj.Price != nil:
			err = w.repair(ctx, tx, job, account, outbox.KindTicket, priceEntity(obj.Price), &obj, logger)
		}
		if err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// deauthorize marks the account unreachable and logs it against each
// organisation using it. Stripe sends account.application.deauthorized to the
// platform's Connect endpoint when a connected account disconnects the
// platform (https://docs.stripe.com/connect/webhooks).
func (w *WebhookWorker) deauthorize(ctx context.Context, tx pgx.Tx, job *river.Job[WebhookArgs], account string, logger *slog.Logger) error {
	reason := fmt.Sprintf("the account deauthorised the platform (Stripe event %s, %s)", job.Args.EventID, stripeclient.EventAccountDeauthorized)
	if _, err := tx.Exec(ctx, markUnreachableSQL, account, reason); err != nil {
		return fmt.Errorf("mark %s unreachable: %w", account, err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, connected_account_id, action, status, error_message, job_id, attempt)
		SELECT 'org', organisation_id, $1, $2, 'success', $3, $4, $5 FROM organisations WHERE stripe_onbehalfof = $1`,
		account, ActionDeauthorized, "marked unreachable: "+reason, job.ID, job.Attempt); err != nil {
		return fmt.Errorf("log deauthorisation of %s: %w", account, err)
	}
	logger.Warn("connected account deauthorised the platform; its jobs are skipped until its organisation's account changes or `syncctl enqueue org` runs")
	return nil
}

// repair compares the object in the event with what the entity's row maps
// to, under the entity's lock (so no job round is writing it meanwhile). On
// a difference it records the drift, makes the entity's sync state no longer
// claim Stripe is in step, and enqueues the entity's job the way the
// triggers do, which also makes a job already running for it run again.
func (w *WebhookWorker) repair(ctx context.Context, tx pgx.Tx, job *river.Job[WebhookArgs], account string,
	kind outbox.Kind, id string, obj *webhookObject, logger *slog.Logger,
) error {
	if id == "" {
		return nil
	}
	logger = logger.With(slog.String("kind", string(kind)), slog.String("entity_id", id))
	if err := lock(ctx, tx, kind, id); err != nil {
		return err
	}
	var (
		differed string
		forget   *string
		err      error
	)
	if kind == outbox.KindEvent {
		differed, forget, err = w.productDrift(ctx, tx, id, account, obj)
	} else {
		differed, forget, err = w.priceDrift(ctx, tx, id, account, obj)
	}
	if err != nil || differed == "" {
		if err == nil {
			logger.Debug("stripe object matches the database; nothing to repair")
		}
		return err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO stripe_sync_drift (entity_type, entity_id, event_id, differed) VALUES ($1, $2, $3, $4)
		ON CONFLICT (entity_type, entity_id) DO UPDATE SET event_id = EXCLUDED.event_id,
			differed = EXCLUDED.differed, detected_at = now()`,
		string(kind), id, job.Args.EventID, differed); err != nil {
		return fmt.Errorf("record drift of %s %s: %w", kind, id, err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE stripe_sync_state SET fingerprint = $3 WHERE entity_type = $1 AND entity_id = $2`,
		string(kind), id, forget); err != nil {
		return fmt.Errorf("forget pushed %s %s: %w", kind, id, err)
	}
	// The triggers' enqueue function, not River's client: River sends at
	// most one insert notification per queue per FetchCooldown, and this
	// job's own insert has usually just used it, so the repair would wait
	// for the next poll. The function notifies whenever it inserts. The
	// bulk lane: a repair must not hold up an organiser's edit.
	if _, err := tx.Exec(ctx, `SELECT stripe_sync_enqueue_many($1, ARRAY[$2::uuid], $3)`, string(kind), id, outbox.PriorityBulk); err != nil {
		return fmt.Errorf("enqueue %s %s: %w", kind, id, err)
	}
	logger.Info("stripe object drifted from the database; repair enqueued", slog.String("differed", differed))
	return nil
}

// productDrift says how the Product in the event differs from the event's
// row ("" when it does not, or when it is not the Product the sync uses for
// the event on this account), and the fingerprint to record so the event's
// job rewrites it: none, so the job updates every field (or, for a deleted
// event, archives again).
func (w *WebhookWorker) productDrift(ctx context.Context, tx pgx.Tx, id, account string, obj *webhookObject) (string, *string, error) {
	batch := &pgx.Batch{}
	load := queueLoadEvent(batch, id)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return "", nil, fmt.Errorf("load event %s: %w", id, err)
	}
	ev, st, p := load.ev, load.st, obj.Product
	var d drift
	switch {
	case ev == nil:
		// The event is gone: its Product must stay archived.
		if st.fingerprint != fingerprintArchived || st.account != account || st.objectID != p.ID || !p.Active || obj.Deleted {
			return "", nil, nil
		}
		d.boolean("active", true, false)
	default:
		if deref(ev.Account) != account || p.ID != firstNonEmpty(deref(ev.StripeProductID), st.objectID, ProductID(id)) {
			return "", nil, nil
		}
		params, err := productParams(ev)
		if err != nil {
			// The event's own job reports the row's problem.
			return "", nil, nil
		}
		if obj.Deleted {
			d.fields, d.parts = []string{"deleted"}, []string{"deleted in Stripe"}
			break
		}
		d.str("name", p.Name, params.Name)
		d.str("description", p.Description, params.Description)
		d.boolean("active", p.Active, params.Active)
		d.str("images", strings.Join(p.Images, " "), strings.Join(params.Images, " "))
		d.metadata(p.Metadata, params.Metadata)
	}
	if !d.any() {
		return "", nil, nil
	}
	return d.detail(), nil, nil
}

// priceDrift is productDrift for a ticket's Price. A Price's amount,
// currency and product cannot change in Stripe, so the recorded fingerprint
// keeps its immutable part: the ticket's job then updates the same Price in
// place (re-activating it if it was archived) rather than creating another.
func (w *WebhookWorker) priceDrift(ctx context.Context, tx pgx.Tx, id, account string, obj *webhookObject) (string, *string, error) {
	batch := &pgx.Batch{}
	load := queueLoadTicket(batch, id)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return "", nil, fmt.Errorf("load ticket %s: %w", id, err)
	}
	t, st, p := load.t, load.st, obj.Price
	if st.account != account || st.objectID != p.ID {
		return "", nil, nil
	}
	var d drift
	switch {
	case t == nil:
		if st.fingerprint != fingerprintArchived || !p.Active || obj.Deleted {
			return "", nil, nil
		}
		d.boolean("active", true, false)
		return d.detail(), nil, nil
	case obj.Deleted:
		d.fields, d.parts = []string{"deleted"}, []string{"deleted in Stripe"}
		return d.detail(), nil, nil
	}
	params, err := priceParams(t, p.Product, w.deps.Currency)
	if err != nil {
		return "", nil, nil
	}
	d.str("nickname", p.Nickname, params.Nickname)
	d.str("lookup_key", p.LookupKey, params.LookupKey)
	d.boolean("active", p.Active, params.Active)
	d.metadata(p.Metadata, params.Metadata)
	if !d.any() {
		return "", nil, nil
	}
	var forget *string
	if immutable, _, ok := strings.Cut(st.fingerprint, ":"); ok {
		keep := immutable + ":drift"
		forget = &keep
	}
	return d.detail(), forget, nil
}

// NextRetry caps the backoff as EventWorker's does.
func (w *WebhookWorker) NextRetry(job *river.Job[WebhookArgs]) time.Time {
	return nextRetry(job.Attempt)
}
