package jobs

// This file maps rows to the Stripe objects they should be: pure functions,
// no database, no Stripe, so every limit and truncation is unit-tested
// (mapping_test.go). Amounts go through UnitAmount (money.go).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// truncatedMarker ends a metadata value cut to Stripe's 500 characters, so
// nobody mistakes a cut value for the whole.
const truncatedMarker = "…[truncated]"

// Stripe's limits on what we send.
const (
	maxDescriptionRunes = 500
	maxMetadataValue    = 500
)

// DataError is an entity whose row cannot be represented in Stripe (a blank
// title, a negative price). Retrying cannot help: the job is cancelled and
// logged failed with Message until the row changes.
type DataError struct {
	Message string
}

func (e *DataError) Error() string { return e.Message }

// ProductID is the deterministic id a new event's Product gets, so a create
// retried after a lost response can only ever find the first one.
func ProductID(eventID string) string {
	return "prod_lt_" + strings.ReplaceAll(eventID, "-", "")
}

// eventRow is the events row an event's Product is mapped from, with its
// organisation's connected account.
type eventRow struct {
	EventID         string
	OrganisationID  string
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
	Account         *string
}

// ticketRow is the event_tickets row a ticket's Price is mapped from.
type ticketRow struct {
	ID            string
	EventID       string
	Name          string
	Price         *string
	Eligibility   []byte
	TotalCapacity *int32
	StripePriceID *string
}

// LookupKey is the lookup_key of a ticket's current Price: whatever happened
// (a lost response, a crash), the Price holding it is the ticket's.
func LookupKey(ticketID string) string { return "lodgetix_ticket_" + ticketID }

// productParams maps an event row to the Product Stripe should hold.
func productParams(ev *eventRow) (stripeclient.ProductParams, error) {
	title := strings.TrimSpace(deref(ev.Title))
	if title == "" {
		return stripeclient.ProductParams{}, &DataError{Message: "event title is blank: a Stripe Product needs a name"}
	}
	params := stripeclient.ProductParams{
		Name:        title,
		Description: truncateRunes(deref(ev.Description), maxDescriptionRunes),
		Images:      []string{},
		Active:      ev.IsPublished != nil && *ev.IsPublished,
		Metadata: map[string]string{
			"event_id":        ev.EventID,
			"parent_event_id": deref(ev.ParentEventID),
			"event_type":      deref(ev.Type),
			"event_slug":      truncateRunes(deref(ev.Slug), maxMetadataValue),
			"organisation_id": ev.OrganisationID,
			"event_start":     formatTime(ev.EventStart),
			"event_end":       formatTime(ev.EventEnd),
		},
	}
	if img := deref(ev.ImageURL); isHTTPURL(img) {
		params.Images = []string{img}
	}
	return params, nil
}

// fingerprint hashes the Stripe-visible parameters, so an update that
// changes nothing Stripe sees costs no Stripe write. The object's id is left
// out: it is compared on its own.
func fingerprint(v any) string {
	b, err := json.Marshal(v) // maps marshal with sorted keys, so this is canonical
	if err != nil {
		panic("jobs: fingerprint: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func productFingerprint(p stripeclient.ProductParams) string {
	p.ID = ""
	return fingerprint(p)
}

// priceParams maps a ticket row to the Price Stripe should hold on the
// Product productID, its amount in currency's minor units (see UnitAmount).
func priceParams(t *ticketRow, productID, currency string) (stripeclient.PriceParams, error) {
	amount, err := UnitAmount(deref(t.Price), currency)
	if err != nil {
		return stripeclient.PriceParams{}, err
	}
	capacity := ""
	if t.TotalCapacity != nil {
		capacity = strconv.Itoa(int(*t.TotalCapacity))
	}
	return stripeclient.PriceParams{
		Product:    productID,
		Currency:   strings.ToLower(currency),
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

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && len(s) <= 2048
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func formatTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
