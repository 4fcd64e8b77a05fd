package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUnitAmount follows https://docs.stripe.com/currencies: minor units per
// currency, the three-decimal and ISK special cases, and the maximum amount.
func TestUnitAmount(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name, numeric, currency string
		want                    int64
	}{
		{"Cents", "19.99", "aud", 1999},
		{"TenCents", "0.10", "aud", 10},
		{"Large", "123456.78", "aud", 12345678},
		{"Zero", "0", "aud", 0},
		{"ZeroWithDecimals", "0.00", "aud", 0},
		{"Whole", "95", "aud", 9500},
		{"OneDecimal", "75.5", "usd", 7550},
		// 0.29 * 100 is 28.999999999999996 in float64: truncating gives 28.
		{"NoFloat", "0.29", "aud", 29},
		{"NoFloatAgain", "4.35", "aud", 435}, // float64: 434.99999999999994
		{"LeadingPlus", "+5", "aud", 500},
		{"NoWholePart", ".5", "aud", 50},
		{"Maximum", "999999.99", "aud", 99999999},
		{"ZeroDecimal", "1500", "jpy", 1500},
		{"ZeroDecimalUpperCase", "1500.00", "JPY", 1500},
		{"ZeroDecimalKRW", "12000", "krw", 12000},
		{"ZeroDecimalMaximum", "99999999", "vnd", 99999999},
		{"ThreeDecimalEndingIn0", "5.120", "kwd", 5120},
		{"ThreeDecimalTwoGiven", "5.12", "bhd", 5120},
		{"ThreeDecimalWhole", "7", "jod", 7000},
		{"ThreeDecimalOMR", "0.99", "omr", 990},
		{"ThreeDecimalTND", "12.5", "tnd", 12500},
		// ISK stays two-decimal in the API: 40 krónur is 4000.
		{"ISKWhole", "40", "isk", 4000},
		{"ISKWholeWithZeroDecimals", "40.00", "isk", 4000},
		// HUF and TWD charge two-decimal amounts (payouts are whole units).
		{"HUFCents", "1990.50", "huf", 199050},
		{"TWDCents", "350.25", "twd", 35025},
		{"IDRTwelveDigits", "9999999999.99", "idr", 999999999999},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := UnitAmount(tt.numeric, tt.currency)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	for _, tt := range []struct {
		name, numeric, currency, msg string
	}{
		{"Null", "", "aud", "ticket price is null: a Stripe Price needs an amount"},
		{"Negative", "-1.00", "aud", "ticket price -1.00 is negative"},
		{"FractionalYen", "19.5", "jpy", "ticket price 19.5 has more decimal places than JPY allows (0)"},
		{"TenthOfACent", "1.005", "aud", "ticket price 1.005 has more decimal places than AUD allows (2)"},
		{"NotANumber", "abc", "aud", `ticket price "abc" is not a number`},
		{"ThreeDecimalNotEndingIn0", "5.125", "kwd",
			"ticket price 5.125 KWD cannot be charged: Stripe takes three-decimal currencies only in multiples of 0.010 (the last decimal must be 0)"},
		{"ThreeDecimalTooManyPlaces", "5.1201", "bhd", "ticket price 5.1201 has more decimal places than BHD allows (3)"},
		{"ISKFraction", "40.10", "isk",
			"ticket price 40.10 ISK cannot be charged: Stripe takes ISK in whole krónur only (two decimals in the API, both 0)"},
		{"ISKHalf", "40.5", "ISK", "Stripe takes ISK in whole krónur only"},
		{"AboveMaximum", "1000000.00", "aud", "ticket price 1000000.00 AUD is above Stripe's maximum of 999999.99 AUD"},
		{"ZeroDecimalAboveMaximum", "100000000", "jpy", "ticket price 100000000 JPY is above Stripe's maximum of 99999999 JPY"},
		{"ThreeDecimalAboveMaximum", "100000", "kwd", "ticket price 100000 KWD is above Stripe's maximum of 99999.999 KWD"},
		{"IDRAboveMaximum", "10000000000", "idr", "above Stripe's maximum of 9999999999.99 IDR"},
		{"WouldOverflowInt64", "99999999999999999999999", "aud", "above Stripe's maximum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := UnitAmount(tt.numeric, tt.currency)
			var dataErr *DataError
			require.ErrorAs(t, err, &dataErr)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}
