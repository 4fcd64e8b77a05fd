package jobs

import (
	"fmt"
	"strings"
)

// zeroDecimal and threeDecimal are Stripe's currencies whose minor unit is
// not the cent (https://stripe.com/docs/currencies#zero-decimal).
var (
	zeroDecimal = map[string]bool{
		"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
		"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
	}
	threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}
)

// minorUnitDigits is how many decimal places a currency's unit_amount
// counts.
func minorUnitDigits(currency string) int {
	switch c := strings.ToLower(currency); {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	default:
		return 2
	}
}

// UnitAmount converts a PostgreSQL numeric's text (for example "19.99") to
// the currency's minor units with decimal arithmetic on the digits: no float
// is ever involved, so 1234567.89 is exactly 123456789. Returns a *DataError
// for a null (empty), negative or malformed amount, or one with more decimal
// places than the currency has (0.5 JPY cannot be charged).
func UnitAmount(numeric, currency string) (int64, error) {
	s := strings.TrimSpace(numeric)
	if s == "" {
		return 0, &DataError{Message: "ticket price is null: a Stripe Price needs an amount"}
	}
	if strings.HasPrefix(s, "-") {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s is negative", s)}
	}
	s = strings.TrimPrefix(s, "+")
	whole, frac, _ := strings.Cut(s, ".")
	digits := minorUnitDigits(currency)
	frac = strings.TrimRight(frac, "0")
	if len(frac) > digits {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s has more decimal places than %s allows (%d)", s, strings.ToUpper(currency), digits)}
	}
	frac += strings.Repeat("0", digits-len(frac))
	if whole == "" {
		whole = "0"
	}
	var amount int64
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, &DataError{Message: fmt.Sprintf("ticket price %q is not a number", numeric)}
		}
		if amount > (1<<63-1)/10-9 {
			return 0, &DataError{Message: fmt.Sprintf("ticket price %s is too large", s)}
		}
		amount = amount*10 + int64(c-'0')
	}
	return amount, nil
}
