package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Problem is the kind of difference Reconcile found between the database and
// a connected account.
type Problem string

const (
	// ProblemMissing is a live event or ticket type with no Stripe object.
	ProblemMissing Problem = "missing"
	// ProblemExtra is an active Product or Price carrying our event_id or
	// ticket_id metadata that is not the object the sync uses for that
	// entity, or whose entity is gone or no longer on this account.
	ProblemExtra Problem = "extra"
	// ProblemDrift is an entity's object whose Stripe-visible fields differ
	// from what its row maps to.
	ProblemDrift Problem = "drift"
	// ProblemMultipleActive is an active Price of a ticket besides the
	// ticket's own active Price: a ticket must have one.
	ProblemMultipleActive Problem = "multiple_active"
	// ProblemInvalid is a row Stripe cannot represent (a blank title, a
	// negative price): no job can sync it until the row is fixed.
	ProblemInvalid Problem = "invalid"
)

// Finding is one difference between the database and Stripe.
type Finding struct {
	// Kind is outbox.KindEvent (Products) or outbox.KindTicket (Prices).
	Kind outbox.Kind
	// EntityID is the event or ticket id; for an extra object, the id its
	// metadata names.
	EntityID string
	// Account is the connected account the object is (or should be) on.
	Account string
	// ObjectID is the Stripe object; for a missing one, the id the sync
	// would look for, if it has one.
	ObjectID string
	Problem  Problem
	// Detail says what differs, for people.
	Detail string
	// Fields names the Stripe fields that drifted (ProblemDrift only).
	Fields []string
}

// AccountSummary is what Reconcile compared on one connected account.
type AccountSummary struct {
	Account  string
	Events   int
	Tickets  int
	Products int
	Prices   int
}

// ReconcileReport is Reconcile's result.
type ReconcileReport struct {
	// Accounts lists every account compared, in account order.
	Accounts []AccountSummary
	// Findings are ordered by account, kind (events first), entity and
	// object.
	Findings []Finding
}

// Reconciler compares the database with what the connected accounts hold,
// and repairs the differences.
type Reconciler struct {
	// Pool is the database holding the host tables and the sync state.
	Pool *pgxpool.Pool
	// Stripe reads the accounts (and archives extras on Fix). Its limiter
	// paces the listing.
	Stripe stripeclient.Client
	// Currency is the lower-case ISO currency of every Price. Defaults to
	// "aud", as the workers' does.
	Currency string
}

// OrgNotFoundError is returned for an organisation id with no row.
type OrgNotFoundError struct {
	ID string
}

func (e *OrgNotFoundError) Error() string { return fmt.Sprintf("organisation %s not found", e.ID) }

// Reconcile reads every Product and Price of each connected account that an
// organisation uses (or only org's, when org is not empty) and compares them
// with the events and ticket types of the organisations on that account,
// mapped exactly as the workers map them. It writes nothing.
//
// A finding about an entity whose job is waiting may be gone once the job
// runs. Returns an *outbox.InvalidIDError if org is not a UUID, an
// *OrgNotFoundError if it has no row, and the Stripe client's error if a
// listing fails. An organisation without a connected account yields an empty
// report.
func (r *Reconciler) Reconcile(ctx context.Context, org string) (*ReconcileReport, error) {
	accounts, err := r.accounts(ctx, org)
	if err != nil {
		return nil, err
	}
	report := &ReconcileReport{}
	for _, account := range accounts {
		summary, findings, err := r.reconcileAccount(ctx, account)
		if err != nil {
			return nil, fmt.Errorf("reconcile %s: %w", account, err)
		}
		report.Accounts = append(report.Accounts, summary)
		report.Findings = append(report.Findings, findings...)
	}
	return report, nil
}

func (r *Reconciler) accounts(ctx context.Context, org string) ([]string, error) {
	if org == "" {
		rows, err := r.Pool.Query(ctx, `
			SELECT DISTINCT stripe_onbehalfof FROM organisations
			WHERE coalesce(stripe_onbehalfof, '') <> '' ORDER BY 1`)
		if err != nil {
			return nil, fmt.Errorf("list connected accounts: %w", err)
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	id, err := outbox.ParseID(org)
	if err != nil {
		return nil, err
	}
	var account *string
	err = r.Pool.QueryRow(ctx, `SELECT stripe_onbehalfof FROM organisations WHERE organisation_id = $1`, id).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &OrgNotFoundError{ID: id}
	}
	if err != nil {
		return nil, fmt.Errorf("read organisation %s: %w", id, err)
	}
	if deref(account) == "" {
		return nil, nil
	}
	return []string{*account}, nil
}

// liveEvent is an event on the account being compared, with what the sync
// recorded for it.
type liveEvent struct {
	row      eventRow
	recorded syncState
	// productID is the Product the event's job would write.
	productID string
}

type liveTicket struct {
	row      ticketRow
	recorded syncState
}

// snapshot is one account's Products and Prices, indexed.
type snapshot struct {
	products     map[string]*stripeclient.Product
	prices       map[string]*stripeclient.Price
	productsList []*stripeclient.Product
	pricesList   []*stripeclient.Price
	byLookupKey  map[string]*stripeclient.Price
}

func (r *Reconciler) reconcileAccount(ctx context.Context, account string) (AccountSummary, []Finding, error) {
	summary := AccountSummary{Account: account}
	events, tickets, err := r.loadAccount(ctx, account)
	if err != nil {
		return summary, nil, err
	}
	summary.Events, summary.Tickets = len(events), len(tickets)

	snap := &snapshot{
		products:    map[string]*stripeclient.Product{},
		prices:      map[string]*stripeclient.Price{},
		byLookupKey: map[string]*stripeclient.Price{},
	}
	call := stripeclient.Call{Account: account}
	err = r.Stripe.ListProducts(ctx, call, func(p *stripeclient.Product) error {
		snap.products[p.ID] = p
		snap.productsList = append(snap.productsList, p)
		return nil
	})
	if err != nil {
		return summary, nil, fmt.Errorf("list products: %w", err)
	}
	err = r.Stripe.ListPrices(ctx, call, "", func(p *stripeclient.Price) error {
		snap.prices[p.ID] = p
		snap.pricesList = append(snap.pricesList, p)
		if p.LookupKey != "" {
			snap.byLookupKey[p.LookupKey] = p
		}
		return nil
	})
	if err != nil {
		return summary, nil, fmt.Errorf("list prices: %w", err)
	}
	summary.Products, summary.Prices = len(snap.products), len(snap.prices)

	var findings []Finding
	add := func(f Finding) {
		f.Account = account
		findings = append(findings, f)
	}
	r.compareProducts(events, snap, add)
	r.comparePrices(account, events, tickets, snap, add)

	slices.SortStableFunc(findings, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)),
			cmp.Compare(a.EntityID, b.EntityID),
			cmp.Compare(a.ObjectID, b.ObjectID))
	})
	return summary, findings, nil
}

func kindOrder(k outbox.Kind) int {
	if k == outbox.KindEvent {
		return 0
	}
	return 1
}

// loadAccount reads every event and ticket type of the organisations on
// account, with their sync state.
func (r *Reconciler) loadAccount(ctx context.Context, account string) (map[string]*liveEvent, map[string]*liveTicket, error) {
	rows, err := r.Pool.Query(ctx, `
		SELECT e.event_id::text, e.organisation_id::text, e.parent_event_id::text, e.title, e.description,
		       e.type, e.slug, e.event_start, e.event_end, e.image_url, e.is_published, e.stripe_product_id,
		       o.stripe_onbehalfof, coalesce(s.connected_account_id, ''), coalesce(s.stripe_object_id, '')
		FROM events e
		JOIN organisations o ON o.organisation_id = e.organisation_id
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'event' AND s.entity_id = e.event_id
		WHERE o.stripe_onbehalfof = $1`, account)
	if err != nil {
		return nil, nil, fmt.Errorf("read events: %w", err)
	}
	events := map[string]*liveEvent{}
	for rows.Next() {
		ev := &liveEvent{}
		if err := rows.Scan(&ev.row.EventID, &ev.row.OrganisationID, &ev.row.ParentEventID, &ev.row.Title,
			&ev.row.Description, &ev.row.Type, &ev.row.Slug, &ev.row.EventStart, &ev.row.EventEnd,
			&ev.row.ImageURL, &ev.row.IsPublished, &ev.row.StripeProductID, &ev.row.Account,
			&ev.recorded.account, &ev.recorded.objectID); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read events: %w", err)
		}
		// The id the event's job would write (see syncProduct).
		ev.productID = firstNonEmpty(deref(ev.row.StripeProductID), ev.recorded.objectID, ProductID(ev.row.EventID))
		events[ev.row.EventID] = ev
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read events: %w", err)
	}

	rows, err = r.Pool.Query(ctx, `
		SELECT t.id::text, t.event_id::text, coalesce(t.name, ''), t.price::text, t.eligibility_criteria::text,
		       t.total_capacity, t.stripe_price_id,
		       coalesce(s.connected_account_id, ''), coalesce(s.stripe_object_id, '')
		FROM event_tickets t
		JOIN events e ON e.event_id = t.event_id
		JOIN organisations o ON o.organisation_id = e.organisation_id
		LEFT JOIN stripe_sync_state s ON s.entity_type = 'ticket' AND s.entity_id = t.id
		WHERE o.stripe_onbehalfof = $1`, account)
	if err != nil {
		return nil, nil, fmt.Errorf("read tickets: %w", err)
	}
	tickets := map[string]*liveTicket{}
	for rows.Next() {
		t := &liveTicket{}
		if err := rows.Scan(&t.row.ID, &t.row.EventID, &t.row.Name, &t.row.Price, &t.row.Eligibility,
			&t.row.TotalCapacity, &t.row.StripePriceID, &t.recorded.account, &t.recorded.objectID); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read tickets: %w", err)
		}
		tickets[t.row.ID] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read tickets: %w", err)
	}
	return events, tickets, nil
}

func (r *Reconciler) compareProducts(events map[string]*liveEvent, snap *snapshot, add func(Finding)) {
	for id, ev := range events {
		params, err := productParams(&ev.row)
		if err != nil {
			add(Finding{Kind: outbox.KindEvent, EntityID: id, ObjectID: ev.productID, Problem: ProblemInvalid, Detail: err.Error()})
			continue
		}
		p := snap.products[ev.productID]
		if p == nil {
			add(Finding{Kind: outbox.KindEvent, EntityID: id, ObjectID: ev.productID, Problem: ProblemMissing,
				Detail: "no Product " + ev.productID + " on the account"})
			continue
		}
		var d drift
		d.str("name", p.Name, params.Name)
		d.str("description", p.Description, params.Description)
		d.boolean("active", p.Active, params.Active)
		d.str("images", strings.Join(p.Images, " "), strings.Join(params.Images, " "))
		d.metadata(p.Metadata, params.Metadata)
		if d.any() {
			add(Finding{Kind: outbox.KindEvent, EntityID: id, ObjectID: p.ID, Problem: ProblemDrift, Detail: d.detail(), Fields: d.fields})
		}
	}
	for _, p := range snap.productsList {
		eventID := p.Metadata["event_id"]
		if !p.Active || eventID == "" {
			continue
		}
		ev := events[eventID]
		switch {
		case ev == nil:
			add(Finding{Kind: outbox.KindEvent, EntityID: eventID, ObjectID: p.ID, Problem: ProblemExtra,
				Detail: "active, but event " + eventID + " is gone or not on this account"})
		case ev.productID != p.ID:
			add(Finding{Kind: outbox.KindEvent, EntityID: eventID, ObjectID: p.ID, Problem: ProblemExtra,
				Detail: "active, but the event's Product is " + ev.productID})
		}
	}
}

func (r *Reconciler) comparePrices(account string, events map[string]*liveEvent, tickets map[string]*liveTicket, snap *snapshot, add func(Finding)) {
	d := &Deps{Currency: cmp.Or(r.Currency, "aud")}
	current := map[string]*stripeclient.Price{}
	for id, t := range tickets {
		productID := ProductID(t.row.EventID)
		if ev := events[t.row.EventID]; ev != nil {
			productID = ev.productID
		}
		params, err := priceParams(&t.row, productID, d.Currency)
		if err != nil {
			add(Finding{Kind: outbox.KindTicket, EntityID: id, Problem: ProblemInvalid, Detail: err.Error()})
			continue
		}
		// The ticket's Price is the one recorded on this account, else the
		// one holding its lookup key: the one its job would start from.
		var p *stripeclient.Price
		if t.recorded.account == account && t.recorded.objectID != "" {
			p = snap.prices[t.recorded.objectID]
		}
		if p == nil {
			p = snap.byLookupKey[params.LookupKey]
		}
		if p == nil {
			add(Finding{Kind: outbox.KindTicket, EntityID: id, ObjectID: t.recorded.objectID, Problem: ProblemMissing,
				Detail: "no Price on the account recorded for the ticket or holding " + params.LookupKey})
			continue
		}
		current[id] = p
		var dr drift
		dr.str("product", p.Product, params.Product)
		dr.str("currency", p.Currency, params.Currency)
		dr.str("unit_amount", strconv.FormatInt(p.UnitAmount, 10), strconv.FormatInt(params.UnitAmount, 10))
		dr.str("nickname", p.Nickname, params.Nickname)
		dr.str("lookup_key", p.LookupKey, params.LookupKey)
		dr.boolean("active", p.Active, params.Active)
		dr.metadata(p.Metadata, params.Metadata)
		if dr.any() {
			add(Finding{Kind: outbox.KindTicket, EntityID: id, ObjectID: p.ID, Problem: ProblemDrift, Detail: dr.detail(), Fields: dr.fields})
		}
	}
	for _, p := range snap.pricesList {
		ticketID := p.Metadata["ticket_id"]
		if !p.Active || ticketID == "" {
			continue
		}
		own, live := current[ticketID], tickets[ticketID] != nil
		switch {
		case !live:
			add(Finding{Kind: outbox.KindTicket, EntityID: ticketID, ObjectID: p.ID, Problem: ProblemExtra,
				Detail: "active, but ticket " + ticketID + " is gone or not on this account"})
		case own == nil:
			add(Finding{Kind: outbox.KindTicket, EntityID: ticketID, ObjectID: p.ID, Problem: ProblemExtra,
				Detail: "active, but not the ticket's Price"})
		case own.ID == p.ID:
		case own.Active:
			add(Finding{Kind: outbox.KindTicket, EntityID: ticketID, ObjectID: p.ID, Problem: ProblemMultipleActive,
				Detail: "active besides the ticket's Price " + own.ID})
		default:
			add(Finding{Kind: outbox.KindTicket, EntityID: ticketID, ObjectID: p.ID, Problem: ProblemExtra,
				Detail: "active, but the ticket's Price is " + own.ID})
		}
	}
}

// drift collects the fields of one object that differ from what its row
// maps to.
type drift struct {
	fields []string
	parts  []string
}

func (d *drift) str(field, have, want string) {
	if have != want {
		d.fields = append(d.fields, field)
		d.parts = append(d.parts, fmt.Sprintf("%s %s, want %s", field, quoteShort(have), quoteShort(want)))
	}
}

func (d *drift) boolean(field string, have, want bool) {
	if have != want {
		d.fields = append(d.fields, field)
		d.parts = append(d.parts, fmt.Sprintf("%s %t, want %t", field, have, want))
	}
}

// metadata compares only our keys: others may belong to someone else. An
// empty value is one Stripe does not hold (sending "" deletes the key).
func (d *drift) metadata(have, want map[string]string) {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	differs := false
	for _, k := range keys {
		if have[k] != want[k] {
			differs = true
			d.parts = append(d.parts, fmt.Sprintf("metadata.%s %s, want %s", k, quoteShort(have[k]), quoteShort(want[k])))
		}
	}
	if differs {
		d.fields = append(d.fields, "metadata")
	}
}

func (d *drift) any() bool      { return len(d.fields) > 0 }
func (d *drift) detail() string { return strings.Join(d.parts, "; ") }

// quoteShort quotes s, cut to 40 runes, so one finding stays one line.
func quoteShort(s string) string {
	const limit = 40
	if len([]rune(s)) > limit {
		return strconv.Quote(string([]rune(s)[:limit-1])) + "…"
	}
	return strconv.Quote(s)
}
