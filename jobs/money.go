package jobs

import (
	"fmt"
	"strings"
)

// currencyRule is how Stripe takes amounts in one currency
// (https://docs.stripe.com/currencies).
type currencyRule struct {
	// digits is how many decimal places unit_amount counts: 2 for cents, 0
	// for zero-decimal currencies, 3 for three-decimal ones.
	digits int
	// step is what unit_amount must be a multiple of: 1 for any amount.
	step int64
	// stepRule says why, for the error when an amount is not a multiple.
	stepRule string
	// max is the largest unit_amount Stripe accepts.
	max int64
}

// maxUnitAmount is the largest amount Stripe takes: eight digits, for
// example 99999999 for 999,999.99 AUD (https://docs.stripe.com/currencies,
// "Minimum and maximum charge amounts").
const maxUnitAmount = 99_999_999

var (
	// zeroDecimal are the currencies whose unit_amount counts whole units
	// (https://docs.stripe.com/currencies#zero-decimal).
	zeroDecimal = map[string]bool{
		"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
		"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
	}
	// threeDecimal are the currencies whose unit_amount counts thousandths;
	// Stripe's payment partners take only amounts whose last digit is 0
	// (https://docs.stripe.com/currencies#three-decimal).
	threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}
)

// ruleOf returns the rule of a currency (any case).
func ruleOf(currency string) currencyRule {
	r := currencyRule{digits: 2, step: 1, max: maxUnitAmount}
	switch c := strings.ToLower(currency); {
	case zeroDecimal[c]:
		r.digits = 0
	case threeDecimal[c]:
		r.digits, r.step = 3, 10
		r.stepRule = "Stripe takes three-decimal currencies only in multiples of 0.010 (the last decimal must be 0)"
	case c == "isk":
		// Special case: ISK stays two-decimal in the API for backwards
		// compatibility, but card networks take whole krónur only, so
		// unit_amount must be divisible by 100
		// (https://docs.stripe.com/currencies#special-cases).
		r.step = 100
		r.stepRule = "Stripe takes ISK in whole krónur only (two decimals in the API, both 0)"
	case c == "idr":
		// IDR amounts may have twelve digits.
		r.max = 999_999_999_999
	}
	// HUF and TWD are special cases too, for payouts only: Stripe pays them
	// out in whole units but charges two-decimal amounts, so a Price takes
	// cents like any two-decimal currency.
	return r
}

// UnitAmount converts a PostgreSQL numeric's text (for example "19.99") to
// the currency's minor units with decimal arithmetic on the digits: no float
// is ever involved, so 123456.78 is exactly 12345678. It checks the amount
// against Stripe's rules for the currency before any request is made
// (https://docs.stripe.com/currencies): ISK is two-decimal in Stripe's API
// (40 ISK is 4000) but takes whole krónur only; a three-decimal currency's
// amount must end in 0; nothing may exceed Stripe's maximum (999,999.99 of a
// two-decimal currency). Returns a *DataError, naming the rule, for a null
// (empty), negative or malformed amount, one with more decimal places than
// the currency has (0.5 JPY), one Stripe cannot charge, or one above the
// maximum.
func UnitAmount(numeric, currency string) (int64, error) {
	s := strings.TrimSpace(numeric)
	if s == "" {
		return 0, &DataError{Message: "ticket price is null: a Stripe Price needs an amount"}
	}
	if strings.HasPrefix(s, "-") {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s is negative", s)}
	}
	s = strings.TrimPrefix(s, "+")
	code := strings.ToUpper(currency)
	rule := ruleOf(currency)
	whole, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > rule.digits {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s has more decimal places than %s allows (%d)", s, code, rule.digits)}
	}
	frac += strings.Repeat("0", rule.digits-len(frac))
	if whole == "" {
		whole = "0"
	}
	var amount int64
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, &DataError{Message: fmt.Sprintf("ticket price %q is not a number", numeric)}
		}
		if amount > rule.max {
			break // too large already: reported below, without overflowing
		}
		amount = amount*10 + int64(c-'0')
	}
	if amount > rule.max {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s %s is above Stripe's maximum of %s %s", s, code, major(rule.max, rule.digits), code)}
	}
	if amount%rule.step != 0 {
		return 0, &DataError{Message: fmt.Sprintf("ticket price %s %s cannot be charged: %s", s, code, rule.stepRule)}
	}
	return amount, nil
}

// major renders minor units as a decimal amount with digits decimals.
func major(minor int64, digits int) string {
	s := fmt.Sprintf("%0*d", digits+1, minor)
	if digits == 0 {
		return s
	}
	return s[:len(s)-digits] + "." + s[len(s)-digits:]
}
