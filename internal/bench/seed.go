package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// seedSync re-implements, call for call, the Stripe requests of the seed
// design's Edge Function (seeds/000_*.txt: syncEvent and syncTicketType), so
// the Stripe writes it makes for a change can be counted by the same emulator
// that counts ours. What it reads it reads from the same tables; what it
// writes back it writes with the host's triggers off (see writeBack).
//
// Where the seed is silent or broken, the charitable reading is taken:
//   - Nothing in the seed carries its trigger's pg_notify to the function,
//     and the payload's type and action ("events", "INSERT") are not the
//     function's ("event", "create"). dispatch plays the missing listener
//     and maps them.
//   - Notifications are handled one at a time, in order. The seed's HTTP
//     function would run them concurrently, and then every ticket of a new
//     event would create its own Product.
type seedSync struct {
	pool   *pgxpool.Pool
	stripe stripeclient.Client
	now    func() time.Time
}

// seedNotification is the seed trigger's payload.
type seedNotification struct {
	Type   string `json:"type"`
	Action string `json:"action"`
	ID     string `json:"id"`
}

// dispatch handles one notification as the missing listener plus the Edge
// Function would.
func (s *seedSync) dispatch(ctx context.Context, payload string) error {
	var n seedNotification
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return fmt.Errorf("seed: payload %q: %w", payload, err)
	}
	action := map[string]string{"INSERT": "create", "UPDATE": "update", "DELETE": "delete"}[n.Action]
	switch n.Type {
	case "events":
		return s.syncEvent(ctx, n.ID, action, "")
	case "event_tickets":
		return s.syncTicketType(ctx, n.ID, action, "")
	}
	return fmt.Errorf("seed: unknown type %q", n.Type)
}

type seedEvent struct {
	EventID         string
	ParentEventID   *string
	Title           *string
	Description     *string
	Type            *string
	Slug            *string
	EventStart      *time.Time
	EventEnd        *time.Time
	ImageURL        *string
	IsPublished     *bool
	StripeProductID *string
	OrganisationID  string
	Account         *string
}

func (s *seedSync) syncEvent(ctx context.Context, eventID, action, accountID string) error {
	var ev seedEvent
	err := s.pool.QueryRow(ctx, `
		SELECT e.event_id::text, e.parent_event_id::text, e.title, e.description, e.type, e.slug, e.event_start,
		       e.event_end, e.image_url, e.is_published, e.stripe_product_id, o.organisation_id::text, o.stripe_onbehalfof
		FROM events e JOIN organisations o ON o.organisation_id = e.organisation_id
		WHERE e.event_id = $1`, eventID).Scan(&ev.EventID, &ev.ParentEventID, &ev.Title, &ev.Description, &ev.Type,
		&ev.Slug, &ev.EventStart, &ev.EventEnd, &ev.ImageURL, &ev.IsPublished, &ev.StripeProductID, &ev.OrganisationID, &ev.Account)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("seed: Event not found")
	}
	if err != nil {
		return err
	}
	account := accountID
	if account == "" {
		account = deref(ev.Account)
	}
	if account == "" {
		return nil
	}
	call := stripeclient.Call{Account: account}
	if action == "delete" && deref(ev.StripeProductID) != "" {
		_, err := s.stripe.ArchiveProduct(ctx, call, deref(ev.StripeProductID))
		return err
	}

	params := stripeclient.ProductParams{
		Name:        deref(ev.Title),
		Description: jsSubstring(deref(ev.Description), 500),
		Metadata: map[string]string{
			"event_id":        ev.EventID,
			"parent_event_id": deref(ev.ParentEventID),
			"event_type":      orDefault(deref(ev.Type), "general"),
			"event_slug":      deref(ev.Slug),
			"organisation_id": ev.OrganisationID,
			"event_start":     isoOrEmpty(ev.EventStart),
			"event_end":       isoOrEmpty(ev.EventEnd),
			"last_synced":     s.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		},
		Images: []string{},
		Active: ev.IsPublished != nil && *ev.IsPublished,
	}
	if img := deref(ev.ImageURL); img != "" {
		params.Images = []string{img}
	}

	var productID string
	if id := deref(ev.StripeProductID); id != "" {
		if _, err := s.stripe.UpdateProduct(ctx, call, id, params); err != nil {
			// "Product might not exist on this account, create it"
			params.ID = id
			if _, err := s.stripe.CreateProduct(ctx, call, params); err != nil {
				return err
			}
		}
		productID = id
	} else {
		p, err := s.stripe.CreateProduct(ctx, call, params)
		if err != nil {
			return err
		}
		productID = p.ID
		if err := s.writeBack(ctx, `UPDATE events SET stripe_product_id = $2 WHERE event_id = $1`, eventID, productID); err != nil {
			return err
		}
	}
	return s.log(ctx, "event", eventID, productID, account, action)
}

type seedTicket struct {
	ID              string
	EventID         string
	Name            *string
	Price           *float64
	Eligibility     []byte
	TotalCapacity   *int32
	StripePriceID   *string
	StripeProductID *string
	Account         *string
}

func (s *seedSync) syncTicketType(ctx context.Context, ticketID, action, accountID string) error {
	var t seedTicket
	err := s.pool.QueryRow(ctx, `
		SELECT t.id::text, t.event_id::text, t.name, t.price::float8, t.eligibility_criteria::text, t.total_capacity,
		       t.stripe_price_id, e.stripe_product_id, o.stripe_onbehalfof
		FROM event_tickets t JOIN events e ON e.event_id = t.event_id
		JOIN organisations o ON o.organisation_id = e.organisation_id
		WHERE t.id = $1`, ticketID).Scan(&t.ID, &t.EventID, &t.Name, &t.Price, &t.Eligibility, &t.TotalCapacity,
		&t.StripePriceID, &t.StripeProductID, &t.Account)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("seed: Ticket type not found")
	}
	if err != nil {
		return err
	}
	account := accountID
	if account == "" {
		account = deref(t.Account)
	}
	if account == "" {
		return nil
	}
	call := stripeclient.Call{Account: account}
	if deref(t.StripeProductID) == "" {
		// The seed syncs the event, then carries on with the product id it
		// read before (still empty), as its code does.
		if err := s.syncEvent(ctx, t.EventID, "create", account); err != nil {
			return err
		}
	}
	if action == "delete" && deref(t.StripePriceID) != "" {
		_, err := s.stripe.ArchivePrice(ctx, call, deref(t.StripePriceID))
		return err
	}

	eligibility := "{}"
	if len(t.Eligibility) > 0 {
		eligibility = string(t.Eligibility)
	}
	capacity := 0
	if t.TotalCapacity != nil {
		capacity = int(*t.TotalCapacity)
	}
	price := 0.0
	if t.Price != nil {
		price = *t.Price
	}
	params := stripeclient.PriceParams{
		Product:    deref(t.StripeProductID),
		Currency:   "aud",
		UnitAmount: int64(math.Round(price * 100)),
		Nickname:   deref(t.Name),
		Active:     true,
		Metadata: map[string]string{
			"ticket_id":      t.ID,
			"ticket_name":    deref(t.Name),
			"event_id":       t.EventID,
			"eligibility":    eligibility,
			"total_capacity": strconv.Itoa(capacity),
			"created_at":     s.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		},
	}
	if old := deref(t.StripePriceID); old != "" {
		// "Prices are immutable, so create a new one and archive the old";
		// a failure is only logged.
		_, _ = s.stripe.ArchivePrice(ctx, call, old)
	}
	p, err := s.stripe.CreatePrice(ctx, call, params)
	if err != nil {
		return err
	}
	if err := s.writeBack(ctx, `UPDATE event_tickets SET stripe_price_id = $2 WHERE id = $1`, ticketID, p.ID); err != nil {
		return err
	}
	return s.log(ctx, "ticket", ticketID, p.ID, account, action)
}

// writeBack stores a Stripe id with the host's triggers off. Through the
// seed's own triggers each write-back would notify again: one more
// products.update per new Product, and, since the tickets' trigger has no
// WHEN, an endless archive-and-create loop per ticket. Counting those would
// make the seed's numbers infinite, so they are left out: the seed's counts
// are a lower bound.
func (s *seedSync) writeBack(ctx context.Context, sql, id, value string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, id, value)
		return err
	})
}

func (s *seedSync) log(ctx context.Context, entityType, entityID, objectID, account, action string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action, status, synced_at)
		VALUES ($1, $2, $3, $4, $5, 'success', now())`, entityType, entityID, objectID, account, action)
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func isoOrEmpty(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// jsSubstring is JavaScript's s.substring(0, n): n UTF-16 code units.
func jsSubstring(s string, n int) string {
	units := 0
	for i, r := range s {
		w := 1
		if r > 0xFFFF {
			w = 2
		}
		if units+w > n {
			return s[:i]
		}
		units += w
	}
	return s
}
