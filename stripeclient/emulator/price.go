package emulator

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

const (
	maxLookupKeyLen = 200
	maxLookupKeys   = 10
)

type priceRecord struct {
	seq        uint64
	id         string
	product    string
	currency   string
	unitAmount int64
	nickname   *string
	lookupKey  *string
	active     bool
	metadata   map[string]string
	created    int64
}

// priceJSON is a Price as Stripe renders it.
type priceJSON struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Active            bool              `json:"active"`
	BillingScheme     string            `json:"billing_scheme"`
	Created           int64             `json:"created"`
	Currency          string            `json:"currency"`
	CustomUnitAmount  any               `json:"custom_unit_amount"`
	Livemode          bool              `json:"livemode"`
	LookupKey         *string           `json:"lookup_key"`
	Metadata          map[string]string `json:"metadata"`
	Nickname          *string           `json:"nickname"`
	Product           string            `json:"product"`
	Recurring         any               `json:"recurring"`
	TaxBehavior       string            `json:"tax_behavior"`
	TiersMode         *string           `json:"tiers_mode"`
	TransformQuantity any               `json:"transform_quantity"`
	Type              string            `json:"type"`
	UnitAmount        int64             `json:"unit_amount"`
	UnitAmountDecimal string            `json:"unit_amount_decimal"`
}

func (p *priceRecord) sequence() uint64 { return p.seq }
func (p *priceRecord) objectID() string { return p.id }
func (p *priceRecord) createdAt() int64 { return p.created }
func (p *priceRecord) renderAny() any   { return p.render() }

func (p *priceRecord) render() priceJSON {
	return priceJSON{
		ID:                p.id,
		Object:            "price",
		Active:            p.active,
		BillingScheme:     "per_unit",
		Created:           p.created,
		Currency:          p.currency,
		LookupKey:         copyStringPtr(p.lookupKey),
		Metadata:          copyMetadata(p.metadata),
		Nickname:          copyStringPtr(p.nickname),
		Product:           p.product,
		TaxBehavior:       "unspecified",
		Type:              "one_time",
		UnitAmount:        p.unitAmount,
		UnitAmountDecimal: strconv.FormatInt(p.unitAmount, 10),
	}
}

func (p priceJSON) toPrice() stripeclient.Price {
	out := stripeclient.Price{
		ID:         p.ID,
		Product:    p.Product,
		Currency:   p.Currency,
		UnitAmount: p.UnitAmount,
		Active:     p.Active,
		Metadata:   copyMetadata(p.Metadata),
		Created:    p.Created,
	}
	if p.Nickname != nil {
		out.Nickname = *p.Nickname
	}
	if p.LookupKey != nil {
		out.LookupKey = *p.LookupKey
	}
	return out
}

// priceFields is the validated, not yet applied, content of a price create
// or update.
type priceFields struct {
	sharedFields
	nickname      *string
	unsetNickname bool
	lookupKey     *string
	unsetLookup   bool
	transfer      bool
}

func parsePriceFields(f *form, create bool) (priceFields, *apiError) {
	var pf priceFields
	var err *apiError
	if pf.sharedFields, err = parseSharedFields(f); err != nil {
		return pf, err
	}
	if pf.nickname, pf.unsetNickname, err = optionalText(f, "nickname", create); err != nil {
		return pf, err
	}
	if pf.lookupKey, pf.unsetLookup, err = optionalText(f, "lookup_key", create); err != nil {
		return pf, err
	}
	if pf.lookupKey != nil && utf8.RuneCountInString(*pf.lookupKey) > maxLookupKeyLen {
		return pf, errInvalid("", "lookup_key", "Invalid string: lookup_key must be at most %d characters.", maxLookupKeyLen)
	}
	if pf.transfer, _, err = f.boolean("transfer_lookup_key"); err != nil {
		return pf, err
	}
	if _, err := pf.mergedMetadata(nil); err != nil {
		return pf, err
	}
	return pf, nil
}

// claimLookupKey checks that the Price priceID may take key and returns the
// Price that holds it now (to be cleared when the change commits), or an
// error when it is held and transfer is false.
func (a *accountState) claimLookupKey(priceID, key string, transfer bool) (*priceRecord, *apiError) {
	holder := a.lookupKeys[key]
	if holder == "" || holder == priceID {
		return nil, nil
	}
	if !transfer {
		err := errInvalid("", "lookup_key",
			"A price (`%s`) already uses that lookup key. Use `transfer_lookup_key` to transfer the lookup key to this price.", holder)
		// The endpoint found the holder: it had started executing.
		err.stored = true
		return nil, err
	}
	return a.prices[holder], nil
}

// setLookupKey gives key (nil: none) to p, taking it from oldHolder if there
// is one.
func (a *accountState) setLookupKey(p *priceRecord, key *string, oldHolder *priceRecord) {
	if oldHolder != nil {
		oldHolder.lookupKey = nil
	}
	if p.lookupKey != nil && a.lookupKeys[*p.lookupKey] == p.id {
		delete(a.lookupKeys, *p.lookupKey)
	}
	p.lookupKey = copyStringPtr(key)
	if key != nil {
		a.lookupKeys[*key] = p.id
	}
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// requiredStr reads a scalar parameter a create cannot do without.
func requiredStr(f *form, name string) (string, *apiError) {
	s, ok, err := f.str(name)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", errMissing(name)
	case s == "":
		return "", errEmptyString(name)
	}
	return s, nil
}

func (e *Emulator) createPrice(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("product", "currency", "unit_amount", "nickname", "lookup_key",
		"transfer_lookup_key", "active", "metadata", "expand"); err != nil {
		return nil, "", err
	}
	product, err := requiredStr(f, "product")
	if err != nil {
		return nil, "", err
	}
	currency, err := requiredStr(f, "currency")
	if err != nil {
		return nil, "", err
	}
	if currency = strings.ToLower(currency); !isCurrency(currency) {
		return nil, "", errInvalid("", "currency", "Invalid currency: %s.", currency)
	}
	amount, ok, err := f.integer("unit_amount")
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", errMissing("unit_amount")
	}
	if amount < 0 {
		return nil, "", errInvalid("", "unit_amount",
			"Invalid unit_amount: this value must be greater than or equal to 0.")
	}
	pf, err := parsePriceFields(f, true)
	if err != nil {
		return nil, "", err
	}
	meta, err := pf.mergedMetadata(nil)
	if err != nil {
		return nil, "", err
	}
	acct := e.account(c.account, true)
	if acct.products[product] == nil {
		return nil, "", errNoSuch("product", "product", product)
	}
	id := ""
	for id == "" || acct.prices[id] != nil {
		id = newID("price_")
	}
	var oldHolder *priceRecord
	if pf.lookupKey != nil {
		if oldHolder, err = acct.claimLookupKey(id, *pf.lookupKey, pf.transfer); err != nil {
			return nil, "", err
		}
	}
	e.seq++
	p := &priceRecord{
		seq:        e.seq,
		id:         id,
		product:    product,
		currency:   currency,
		unitAmount: amount,
		nickname:   pf.nickname,
		active:     pf.activeOr(true),
		metadata:   meta,
		created:    e.clock().Unix(),
	}
	acct.prices[id] = p
	if pf.lookupKey != nil {
		acct.setLookupKey(p, pf.lookupKey, oldHolder)
	}
	return p.render(), id, nil
}

func (e *Emulator) updatePrice(c *call) (any, string, *apiError) {
	f := c.form
	for _, immutable := range []string{"unit_amount", "currency", "product"} {
		if f.has(immutable) {
			return nil, c.id, errUnknownParam(immutable)
		}
	}
	if err := f.check("nickname", "lookup_key", "transfer_lookup_key", "active", "metadata", "expand"); err != nil {
		return nil, c.id, err
	}
	pf, err := parsePriceFields(f, false)
	if err != nil {
		return nil, c.id, err
	}
	acct := e.account(c.account, false)
	p := acct.prices[c.id]
	if p == nil {
		return nil, c.id, errNoSuch("price", "id", c.id)
	}
	meta, err := pf.mergedMetadata(p.metadata)
	if err != nil {
		return nil, c.id, err
	}
	var oldHolder *priceRecord
	if pf.lookupKey != nil {
		if oldHolder, err = acct.claimLookupKey(p.id, *pf.lookupKey, pf.transfer); err != nil {
			return nil, c.id, err
		}
	}
	setText(&p.nickname, pf.nickname, pf.unsetNickname)
	if pf.unsetLookup || pf.lookupKey != nil {
		acct.setLookupKey(p, pf.lookupKey, oldHolder)
	}
	p.active = pf.activeOr(p.active)
	p.metadata = meta
	return p.render(), p.id, nil
}

func (e *Emulator) listPrices(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("limit", "starting_after", "product", "lookup_keys", "expand"); err != nil {
		return nil, "", err
	}
	product, filterProduct, err := f.str("product")
	if err != nil {
		return nil, "", err
	}
	keys, filterKeys, _, err := f.list("lookup_keys")
	if err != nil {
		return nil, "", err
	}
	if len(keys) > maxLookupKeys {
		return nil, "", errInvalid("", "lookup_keys",
			"Invalid array: lookup_keys can have at most %d elements, but you passed %d.", maxLookupKeys, len(keys))
	}
	return listObjects(f, "price", "/v1/prices", e.account(c.account, false).prices, func(p *priceRecord) bool {
		return (!filterProduct || p.product == product) &&
			(!filterKeys || (p.lookupKey != nil && slices.Contains(keys, *p.lookupKey)))
	})
}
