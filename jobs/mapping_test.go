package jobs

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Amounts are covered by TestUnitAmount (money_test.go); these tests only
// check that priceParams goes through it.

func ptr[T any](v T) *T { return &v }

func TestProductParams(t *testing.T) {
	t.Parallel()

	// A rune of three bytes, so a byte cut would land inside one.
	long := strings.Repeat("é", 300) + strings.Repeat("€", 300)
	start := time.Date(2026, 3, 14, 18, 30, 0, 0, time.FixedZone("AEDT", 11*60*60))

	base := func() *eventRow {
		return &eventRow{
			EventID:        "0b6c7f1e-1111-4a6a-9c1b-000000000001",
			OrganisationID: "0b6c7f1e-2222-4a6a-9c1b-000000000002",
			Title:          ptr("Grand Installation"),
		}
	}

	for _, tt := range []struct {
		name   string
		modify func(ev *eventRow)
		check  func(t *testing.T, p stripeclient.ProductParams)
	}{
		{
			name:   "Minimal",
			modify: func(*eventRow) {},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, "Grand Installation", p.Name)
				require.Empty(t, p.Description)
				require.NotNil(t, p.Images, "an empty list clears Stripe's images; nil would leave them")
				require.Empty(t, p.Images)
				require.False(t, p.Active, "unpublished (null) is inactive")
				require.Equal(t, map[string]string{
					"event_id":        "0b6c7f1e-1111-4a6a-9c1b-000000000001",
					"parent_event_id": "",
					"event_type":      "",
					"event_slug":      "",
					"organisation_id": "0b6c7f1e-2222-4a6a-9c1b-000000000002",
					"event_start":     "",
					"event_end":       "",
				}, p.Metadata, "every key is sent, blank when null, so a cleared column clears Stripe's value")
			},
		},
		{
			name: "TitleTrimmed",
			modify: func(ev *eventRow) {
				ev.Title = ptr("  Grand Installation \n")
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, "Grand Installation", p.Name)
			},
		},
		{
			name: "Published",
			modify: func(ev *eventRow) {
				ev.IsPublished = ptr(true)
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.True(t, p.Active)
			},
		},
		{
			name: "DescriptionWithinLimit",
			modify: func(ev *eventRow) {
				ev.Description = ptr(strings.Repeat("€", 500))
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, strings.Repeat("€", 500), p.Description, "500 runes is 1500 bytes and still fits")
			},
		},
		{
			name: "DescriptionTruncatedToRunes",
			modify: func(ev *eventRow) {
				ev.Description = ptr(long)
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.True(t, utf8.ValidString(p.Description))
				require.Equal(t, 500, utf8.RuneCountInString(p.Description))
				require.Equal(t, strings.Repeat("é", 300)+strings.Repeat("€", 200), p.Description)
			},
		},
		{
			name: "MetadataValues",
			modify: func(ev *eventRow) {
				ev.ParentEventID = ptr("0b6c7f1e-3333-4a6a-9c1b-000000000003")
				ev.Type = ptr("installation")
				ev.Slug = ptr(long)
				ev.EventStart = &start
				ev.EventEnd = ptr(start.Add(3 * time.Hour))
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, "0b6c7f1e-3333-4a6a-9c1b-000000000003", p.Metadata["parent_event_id"])
				require.Equal(t, "installation", p.Metadata["event_type"])
				require.Equal(t, strings.Repeat("é", 300)+strings.Repeat("€", 200), p.Metadata["event_slug"],
					"a slug is cut to Stripe's 500-character metadata value")
				require.Len(t, p.Metadata, 7)
			},
		},
		{
			name: "TimesRFC3339InUTC",
			modify: func(ev *eventRow) {
				ev.EventStart = &start
				ev.EventEnd = ptr(start.Add(90*time.Minute + 500*time.Millisecond))
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, "2026-03-14T07:30:00Z", p.Metadata["event_start"])
				require.Equal(t, "2026-03-14T09:00:00Z", p.Metadata["event_end"], "whole seconds, so the fingerprint is stable")
			},
		},
		{
			name: "ImageHTTPS",
			modify: func(ev *eventRow) {
				ev.ImageURL = ptr("https://cdn.example.com/a.png")
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, []string{"https://cdn.example.com/a.png"}, p.Images)
			},
		},
		{
			name: "ImageHTTP",
			modify: func(ev *eventRow) {
				ev.ImageURL = ptr("http://cdn.example.com/a.png")
			},
			check: func(t *testing.T, p stripeclient.ProductParams) {
				t.Helper()
				require.Equal(t, []string{"http://cdn.example.com/a.png"}, p.Images)
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			ev := base()
			tt.modify(ev)
			p, err := productParams(ev)
			require.NoError(t, err)
			tt.check(t, p)
		})
	}

	t.Run("ImagesOnlyAbsoluteHTTP", func(t *testing.T) {
		t.Parallel()

		for _, img := range []string{
			"",
			"/images/a.png",
			"cdn.example.com/a.png",
			"ftp://cdn.example.com/a.png",
			"data:image/png;base64,AAAA",
			"https:///a.png",
			"javascript:alert(1)",
			"https://cdn.example.com/" + strings.Repeat("a", 2048),
		} {
			ev := base()
			ev.ImageURL = &img
			p, err := productParams(ev)
			require.NoError(t, err)
			require.Equal(t, []string{}, p.Images, "image %q", img)
		}
	})

	t.Run("BlankTitleIsDataError", func(t *testing.T) {
		t.Parallel()

		for _, title := range []*string{nil, ptr(""), ptr(" \t\n")} {
			ev := base()
			ev.Title = title
			_, err := productParams(ev)
			var dataErr *DataError
			require.ErrorAs(t, err, &dataErr)
			require.Contains(t, dataErr.Message, "title is blank")
		}
	})
}

func TestPriceParams(t *testing.T) {
	t.Parallel()

	const (
		ticketID = "0b6c7f1e-4444-4a6a-9c1b-000000000004"
		eventID  = "0b6c7f1e-1111-4a6a-9c1b-000000000001"
	)
	base := func() *ticketRow {
		return &ticketRow{ID: ticketID, EventID: eventID, Name: "Mason", Price: ptr("95.50")}
	}

	t.Run("Full", func(t *testing.T) {
		t.Parallel()

		tk := base()
		tk.Eligibility = []byte(`{ "rules": [ "mason" ] }`)
		tk.TotalCapacity = ptr(int32(100))
		p, err := priceParams(tk, "prod_1", "AUD")
		require.NoError(t, err)
		require.Equal(t, stripeclient.PriceParams{
			Product:    "prod_1",
			Currency:   "aud",
			UnitAmount: 9550,
			Nickname:   "Mason",
			LookupKey:  "lodgetix_ticket_" + ticketID,
			Active:     true,
			Metadata: map[string]string{
				"ticket_id":      ticketID,
				"ticket_name":    "Mason",
				"event_id":       eventID,
				"eligibility":    `{"rules":["mason"]}`,
				"total_capacity": "100",
			},
		}, p)
	})

	t.Run("NullsBlank", func(t *testing.T) {
		t.Parallel()

		p, err := priceParams(base(), "prod_1", "aud")
		require.NoError(t, err)
		require.Empty(t, p.Metadata["eligibility"])
		require.Empty(t, p.Metadata["total_capacity"])
		require.Len(t, p.Metadata, 5)
	})

	t.Run("AmountInCurrencyMinorUnits", func(t *testing.T) {
		t.Parallel()

		tk := base()
		tk.Price = ptr("950")
		p, err := priceParams(tk, "prod_1", "JPY")
		require.NoError(t, err)
		require.Equal(t, "jpy", p.Currency)
		require.Equal(t, int64(950), p.UnitAmount, "JPY is zero-decimal")
	})

	t.Run("BadAmountIsDataError", func(t *testing.T) {
		t.Parallel()

		for _, tt := range []struct {
			price    *string
			currency string
		}{{nil, "aud"}, {ptr("-1"), "aud"}, {ptr("0.5"), "jpy"}} {
			tk := base()
			tk.Price = tt.price
			_, err := priceParams(tk, "prod_1", tt.currency)
			var dataErr *DataError
			require.ErrorAs(t, err, &dataErr, "price %v %s", deref(tt.price), tt.currency)
		}
	})

	t.Run("TicketNameTruncatedInMetadataOnly", func(t *testing.T) {
		t.Parallel()

		tk := base()
		tk.Name = strings.Repeat("€", 501)
		p, err := priceParams(tk, "prod_1", "aud")
		require.NoError(t, err)
		require.Equal(t, strings.Repeat("€", 500), p.Metadata["ticket_name"])
		require.Equal(t, tk.Name, p.Nickname)
	})
}

func TestEligibilityValue(t *testing.T) {
	t.Parallel()

	// fits is a JSON string literal of exactly n runes, quotes included.
	fits := func(n int) string { return `"` + strings.Repeat("€", n-2) + `"` }

	for _, tt := range []struct {
		name, raw, want string
	}{
		{"Null", "", ""},
		{"Compacted", "{\n  \"rules\": [\"mason\", \"ea\"]\n}", `{"rules":["mason","ea"]}`},
		{"NotJSONKeptAsIs", "{rules: mason}", "{rules: mason}"},
		{"ExactlyLimit", fits(500), fits(500)},
		{
			"OverLimitCutWithMarker",
			fits(501),
			`"` + strings.Repeat("€", 500-1-utf8.RuneCountInString(truncatedMarker)) + truncatedMarker,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := eligibilityValue([]byte(tt.raw))
			require.Equal(t, tt.want, got)
			require.LessOrEqual(t, utf8.RuneCountInString(got), maxMetadataValue)
			require.True(t, utf8.ValidString(got))
		})
	}
}

func TestFingerprints(t *testing.T) {
	t.Parallel()

	tk := &ticketRow{ID: "t1", EventID: "e1", Name: "Mason", Price: ptr("10")}
	p, err := priceParams(tk, "prod_1", "aud")
	require.NoError(t, err)
	immutable, full := priceFingerprints(p)
	require.True(t, strings.HasPrefix(full, immutable+":"))

	renamed := p
	renamed.Nickname = "Mason (EA)"
	immutable2, full2 := priceFingerprints(renamed)
	require.Equal(t, immutable, immutable2, "a nickname can change in place")
	require.NotEqual(t, full, full2)

	repriced := p
	repriced.UnitAmount++
	immutable3, _ := priceFingerprints(repriced)
	require.NotEqual(t, immutable, immutable3, "an amount cannot: it needs a new Price")

	ev := &eventRow{EventID: "e1", Title: ptr("Installation")}
	pp, err := productParams(ev)
	require.NoError(t, err)
	withID := pp
	withID.ID = ProductID("e1")
	require.Equal(t, productFingerprint(pp), productFingerprint(withID), "the id is compared on its own")
}
