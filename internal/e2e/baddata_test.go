package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/jobs"
)

func TestWorker_badData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "sk_test_e2e_baddata_0123456789")
	const (
		org     = "0a000000-0000-4000-8000-000000000010"
		account = "acct_e2e_baddata"
	)
	h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
	w := h.startWorker("worker", workerConfig{})

	var (
		blankTitle   = uuidN("0e000000", 1)
		host         = uuidN("0e000000", 2)
		longDesc     = uuidN("0e000000", 3)
		badImage     = uuidN("0e000000", 4)
		later        = uuidN("0e000000", 5)
		underBlank   = uuidN("07000000", 1)
		negative     = uuidN("07000000", 2)
		bigElig      = uuidN("07000000", 3)
		laterTicket  = uuidN("07000000", 4)
		description  = strings.Repeat("Ünïcödé ", 1250)
		eligibility  = bigEligibility()
		truncatedEnd = "…[truncated]"
	)
	require.Equal(t, 10_000, utf8.RuneCountInString(description))
	require.Greater(t, len(eligibility), 5000)

	h.insertEvent(blankTitle, org, "   ")
	h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Orphaned Dinner', 20.00)`, underBlank, blankTitle)
	h.insertEvent(host, org, "Host Event")
	h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Refund', -5.00)`, negative, host)
	h.exec(`INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria) VALUES ($1, $2, 'Members', 30.00, $3::jsonb)`,
		bigElig, host, eligibility)
	h.exec(`INSERT INTO events (event_id, organisation_id, title, description, is_published) VALUES ($1, $2, 'Long Winded', $3, true)`,
		longDesc, org, description)
	h.exec(`INSERT INTO events (event_id, organisation_id, title, image_url, is_published) VALUES ($1, $2, 'Bad Picture', 'not a url', true)`,
		badImage, org)
	h.waitIdle(30*time.Second, false)

	// The worker keeps running and other entities keep syncing.
	require.True(t, w.Running())
	h.insertEvent(later, org, "After The Storm")
	h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Entry', 15.00)`, laterTicket, later)
	h.waitIdle(30*time.Second, false)
	require.True(t, w.Running())
	status, _ := w.get(t, "/readyz")
	require.Equal(t, 200, status)

	s := h.state()
	type want struct {
		kind, field, id string
		state, status   string
		message         string
	}
	for _, c := range []want{
		{"stripe_sync_event", "event_id", blankTitle, "cancelled", jobs.StatusFailed, "event title is blank"},
		{"stripe_sync_ticket", "ticket_id", underBlank, "cancelled", jobs.StatusFailed, "event title is blank"},
		{"stripe_sync_ticket", "ticket_id", negative, "cancelled", jobs.StatusFailed, "ticket price -5.00 is negative"},
		{"stripe_sync_event", "event_id", host, "completed", jobs.StatusSuccess, ""},
		{"stripe_sync_ticket", "ticket_id", bigElig, "completed", jobs.StatusSuccess, ""},
		{"stripe_sync_event", "event_id", longDesc, "completed", jobs.StatusSuccess, ""},
		{"stripe_sync_event", "event_id", badImage, "completed", jobs.StatusSuccess, ""},
		{"stripe_sync_event", "event_id", later, "completed", jobs.StatusSuccess, ""},
		{"stripe_sync_ticket", "ticket_id", laterTicket, "completed", jobs.StatusSuccess, ""},
	} {
		jobID, state, attempt := h.jobOf(c.kind, c.field, c.id)
		require.Equal(t, c.state, state, "%s %s", c.kind, c.id)
		require.Equal(t, 1, attempt, "%s %s: bad data is never retried, good data needs one attempt", c.kind, c.id)
		logs := h.syncLog(c.id)
		require.Len(t, logs, 1, "%s %s: one log row: %+v", c.kind, c.id, logs)
		require.Equal(t, c.status, logs[0].Status, "%s %s", c.kind, c.id)
		require.Equal(t, jobID, logs[0].JobID)
		if c.message != "" {
			require.Contains(t, logs[0].Message, c.message, "%s %s", c.kind, c.id)
		}
	}

	require.Nil(t, productOf(s, account, jobs.ProductID(blankTitle)), "no Product for a blank title")
	require.Empty(t, pricesOf(s, account, underBlank))
	require.Empty(t, pricesOf(s, account, negative))

	p := productOf(s, account, jobs.ProductID(longDesc))
	require.NotNil(t, p)
	require.Equal(t, string([]rune(description)[:500]), p.Description, "cut to 500 runes")

	p = productOf(s, account, jobs.ProductID(badImage))
	require.NotNil(t, p)
	require.Empty(t, p.Images, "an image_url that is not a URL is left out")

	prices := pricesOf(s, account, bigElig)
	require.Len(t, prices, 1)
	got := prices[0].Metadata["eligibility"]
	require.Equal(t, 500, utf8.RuneCountInString(got))
	require.True(t, strings.HasSuffix(got, truncatedEnd), "ends with the marker: %q", got[len(got)-40:])
	var stored string
	require.NoError(t, h.pool.QueryRow(context.Background(),
		`SELECT eligibility_criteria::text FROM event_tickets WHERE id = $1`, bigElig).Scan(&stored))
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, []byte(stored)))
	require.True(t, strings.HasPrefix(compact.String(), strings.TrimSuffix(got, truncatedEnd)), "a prefix of the compact JSON")

	require.NotNil(t, productOf(s, account, jobs.ProductID(later)))
	require.Len(t, pricesOf(s, account, laterTicket), 1)
}

// bigEligibility is about 5 KB of compact eligibility JSON.
func bigEligibility() string {
	var b strings.Builder
	b.WriteString(`{"rules":[`)
	for i := 0; b.Len() < 5100; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"lodge":"Lodge No. %04d","rank":"Master Mason","member_since":"19%02d-01-01"}`, i, i%100)
	}
	b.WriteString(`]}`)
	return b.String()
}
