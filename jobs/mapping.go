package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

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
