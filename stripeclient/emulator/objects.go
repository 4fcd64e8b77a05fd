package emulator

import (
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

const (
	maxImages       = 8
	maxImageURLLen  = 2048
	maxLookupKeyLen = 200
	maxLookupKeys   = 10
	defaultLimit    = 10
	maxLimit        = 100
)

// accountState is one account's objects. seq orders objects by creation, so
// lists are stable even when several share a Created second.
type accountState struct {
	products map[string]*productRecord
	prices   map[string]*priceRecord
	// lookupKeys maps a lookup key to the id of the Price holding it.
	lookupKeys map[string]string
}

type productRecord struct {
	seq         uint64
	id          string
	name        string
	description *string
	images      []string
	active      bool
	metadata    map[string]string
	created     int64
	updated     int64
}

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

// productJSON is a Product as Stripe renders it.
type productJSON struct {
	ID                  string            `json:"id"`
	Object              string            `json:"object"`
	Active              bool              `json:"active"`
	Attributes          []string          `json:"attributes"`
	Created             int64             `json:"created"`
	DefaultPrice        *string           `json:"default_price"`
	Description         *string           `json:"description"`
	Features            []any             `json:"features"`
	Images              []string          `json:"images"`
	Livemode            bool              `json:"livemode"`
	MarketingFeatures   []any             `json:"marketing_features"`
	Metadata            map[string]string `json:"metadata"`
	Name                string            `json:"name"`
	PackageDimensions   any               `json:"package_dimensions"`
	Shippable           *bool             `json:"shippable"`
	StatementDescriptor *string           `json:"statement_descriptor"`
	TaxCode             *string           `json:"tax_code"`
	Type                string            `json:"type"`
	UnitLabel           *string           `json:"unit_label"`
	Updated             int64             `json:"updated"`
	URL                 *string           `json:"url"`
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

type listJSON struct {
	Object  string `json:"object"`
	Data    []any  `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

func (p *productRecord) render() productJSON {
	images := append([]string{}, p.images...)
	return productJSON{
		ID:                p.id,
		Object:            "product",
		Active:            p.active,
		Attributes:        []string{},
		Created:           p.created,
		Description:       copyStringPtr(p.description),
		Features:          []any{},
		Images:            images,
		MarketingFeatures: []any{},
		Metadata:          copyMetadata(p.metadata),
		Name:              p.name,
		Type:              "service",
		Updated:           p.updated,
	}
}

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

func (p productJSON) toProduct() stripeclient.Product {
	out := stripeclient.Product{
		ID:       p.ID,
		Name:     p.Name,
		Images:   append([]string{}, p.Images...),
		Active:   p.Active,
		Metadata: copyMetadata(p.Metadata),
		Created:  p.Created,
	}
	if p.Description != nil {
		out.Description = *p.Description
	}
	return out
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

func copyStringPtr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

func copyMetadata(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newID returns prefix plus 14 random alphanumerics, like Stripe's ids.
func newID(prefix string) string {
	b := make([]byte, 14)
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return prefix + string(b)
}

// call is one API request being handled, under the emulator's mutex.
type call struct {
	method  string
	path    string
	account string
	// id is the object id from the path, if the route has one.
	id   string
	form *form
}

// routeOf names the handler for a method and path; ok is false for an
// unknown route.
func routeOf(method, escapedPath string) (op, id string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || segs[0] != "v1" {
		return "", "", false
	}
	if len(segs) == 3 {
		unescaped, err := url.PathUnescape(segs[2])
		if err != nil || unescaped == "" {
			return "", "", false
		}
		id = unescaped
	}
	var resource string
	switch segs[1] {
	case "products":
		resource = "product"
	case "prices":
		resource = "price"
	default:
		return "", "", false
	}
	switch {
	case method == "POST" && id == "":
		return resource + ".create", "", true
	case method == "POST":
		return resource + ".update", id, true
	case method == "GET" && id == "":
		return resource + ".list", "", true
	case method == "GET":
		return resource + ".get", id, true
	}
	return "", "", false
}

// handle runs one API call against the state and returns the object (or
// list) to render. The caller holds e.mu.
func (e *Emulator) handle(op string, c *call) (any, string, *apiError) {
	switch op {
	case "product.create":
		return e.createProduct(c)
	case "product.update":
		return e.updateProduct(c)
	case "product.get":
		return e.getProduct(c)
	case "product.list":
		return e.listProducts(c)
	case "price.create":
		return e.createPrice(c)
	case "price.update":
		return e.updatePrice(c)
	case "price.get":
		return e.getPrice(c)
	case "price.list":
		return e.listPrices(c)
	}
	return nil, "", errUnrecognizedURL(c.method, c.path)
}

// account returns the state of account, creating it when create is true;
// it returns nil for an account never written to when create is false.
func (e *Emulator) account(account string, create bool) *accountState {
	a := e.accounts[account]
	if a == nil && create {
		a = &accountState{
			products:   map[string]*productRecord{},
			prices:     map[string]*priceRecord{},
			lookupKeys: map[string]string{},
		}
		e.accounts[account] = a
	}
	return a
}

func (e *Emulator) lookupProduct(account, id string) *productRecord {
	if a := e.account(account, false); a != nil {
		return a.products[id]
	}
	return nil
}

func (e *Emulator) lookupPrice(account, id string) *priceRecord {
	if a := e.account(account, false); a != nil {
		return a.prices[id]
	}
	return nil
}

func validateImages(vals []string) *apiError {
	if len(vals) > maxImages {
		return errInvalid("", "images",
			"Invalid array: images can have at most %d elements, but you passed %d.", maxImages, len(vals))
	}
	for i, v := range vals {
		param := "images[" + strconv.Itoa(i) + "]"
		u, err := url.Parse(v)
		if v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			len(v) > maxImageURLLen {
			return errInvalid("url_invalid", param, "Not a valid URL")
		}
	}
	return nil
}

// productFields is the validated, not yet applied, content of a product
// create or update.
type productFields struct {
	name        *string
	description *string
	unsetDesc   bool
	images      []string
	setImages   bool
	active      *bool
	metadata    map[string]string
	metaCleared bool
	setMeta     bool
}

func parseProductFields(f *form, create bool) (productFields, *apiError) {
	var pf productFields
	if name, ok, err := f.str("name"); err != nil {
		return pf, err
	} else if ok {
		switch {
		case name == "":
			return pf, errEmptyString("name")
		case strings.TrimSpace(name) == "":
			return pf, errInvalid("parameter_invalid_string_blank", "name",
				"The parameter name cannot be blank. Please remove it from your request or supply a non-blank value.")
		}
		pf.name = &name
	} else if create {
		return pf, errMissing("name")
	}
	if desc, ok, err := f.str("description"); err != nil {
		return pf, err
	} else if ok {
		if desc == "" {
			if create {
				return pf, errEmptyString("description")
			}
			pf.unsetDesc = true
		} else {
			pf.description = &desc
		}
	}
	images, ok, cleared, err := f.list("images")
	if err != nil {
		return pf, err
	}
	if ok {
		if !cleared {
			if err := validateImages(images); err != nil {
				return pf, err
			}
		}
		pf.images, pf.setImages = images, true
	}
	if active, ok, err := f.boolean("active"); err != nil {
		return pf, err
	} else if ok {
		pf.active = &active
	}
	meta, ok, cleared, err := f.hash("metadata")
	if err != nil {
		return pf, err
	}
	if ok {
		pf.metadata, pf.metaCleared, pf.setMeta = meta, cleared, true
	}
	return pf, nil
}

func (e *Emulator) createProduct(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("id", "name", "description", "images", "active", "metadata", "expand"); err != nil {
		return nil, "", err
	}
	pf, err := parseProductFields(f, true)
	if err != nil {
		return nil, "", err
	}
	id, hasID, err := f.str("id")
	if err != nil {
		return nil, "", err
	}
	if hasID && id == "" {
		return nil, "", errEmptyString("id")
	}
	meta, err := mergeMetadata(nil, pf.metadata, pf.metaCleared)
	if err != nil {
		return nil, "", err
	}
	if hasID {
		if e.lookupProduct(c.account, id) != nil {
			return nil, "", errInvalid("resource_already_exists", "id", "Product already exists.")
		}
	} else {
		for id == "" || e.lookupProduct(c.account, id) != nil {
			id = newID("prod_")
		}
	}
	now := e.clock().Unix()
	e.seq++
	p := &productRecord{
		seq:         e.seq,
		id:          id,
		name:        *pf.name,
		description: pf.description,
		images:      append([]string{}, pf.images...),
		active:      pf.active == nil || *pf.active,
		metadata:    meta,
		created:     now,
		updated:     now,
	}
	e.account(c.account, true).products[id] = p
	return p.render(), id, nil
}

func (e *Emulator) updateProduct(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("name", "description", "images", "active", "metadata", "expand"); err != nil {
		return nil, c.id, err
	}
	pf, err := parseProductFields(f, false)
	if err != nil {
		return nil, c.id, err
	}
	p := e.lookupProduct(c.account, c.id)
	if p == nil {
		return nil, c.id, errNoSuch("product", "id", c.id)
	}
	meta := p.metadata
	if pf.setMeta {
		if meta, err = mergeMetadata(p.metadata, pf.metadata, pf.metaCleared); err != nil {
			return nil, c.id, err
		}
	}
	if pf.name != nil {
		p.name = *pf.name
	}
	if pf.unsetDesc {
		p.description = nil
	} else if pf.description != nil {
		p.description = pf.description
	}
	if pf.setImages {
		p.images = append([]string{}, pf.images...)
	}
	if pf.active != nil {
		p.active = *pf.active
	}
	p.metadata = meta
	p.updated = e.clock().Unix()
	return p.render(), p.id, nil
}

func (e *Emulator) getProduct(c *call) (any, string, *apiError) {
	if err := c.form.check("expand"); err != nil {
		return nil, c.id, err
	}
	p := e.lookupProduct(c.account, c.id)
	if p == nil {
		return nil, c.id, errNoSuch("product", "id", c.id)
	}
	return p.render(), p.id, nil
}

// listItem is what paging needs to know of an object.
type listItem struct {
	seq    uint64
	render func() any
}

// pageParams reads limit, starting_after and ending_before; cursorSeq
// resolves a cursor id to its object's seq on the account.
func pageParams(f *form, object string, cursorSeq func(string) (uint64, bool)) (limit int, after, before uint64, err *apiError) {
	limit = defaultLimit
	if n, ok, perr := f.integer("limit"); perr != nil {
		return 0, 0, 0, perr
	} else if ok {
		if n < 1 || n > maxLimit {
			return 0, 0, 0, errInvalid("", "limit",
				"Invalid integer: limit must be between 1 and %d, but you passed %d.", maxLimit, n)
		}
		limit = int(n)
	}
	for _, name := range []string{"starting_after", "ending_before"} {
		id, ok, serr := f.str(name)
		if serr != nil {
			return 0, 0, 0, serr
		}
		if !ok {
			continue
		}
		seq, found := cursorSeq(id)
		if !found {
			return 0, 0, 0, errNoSuch(object, name, id)
		}
		if name == "starting_after" {
			after = seq
		} else {
			before = seq
		}
	}
	if after != 0 && before != 0 {
		return 0, 0, 0, errInvalid("parameters_exclusive", "ending_before",
			"You may only specify one of these parameters: ending_before, starting_after.")
	}
	return limit, after, before, nil
}

// page cuts one page, newest first, out of items.
func cutPage(items []listItem, limit int, after, before uint64, listURL string) listJSON {
	sort.Slice(items, func(i, j int) bool { return items[i].seq > items[j].seq })
	var sel []listItem
	hasMore := false
	switch {
	case after != 0:
		for _, it := range items {
			if it.seq < after {
				sel = append(sel, it)
			}
		}
		if len(sel) > limit {
			sel, hasMore = sel[:limit], true
		}
	case before != 0:
		for _, it := range items {
			if it.seq > before {
				sel = append(sel, it)
			}
		}
		if len(sel) > limit {
			sel, hasMore = sel[len(sel)-limit:], true
		}
	default:
		sel = items
		if len(sel) > limit {
			sel, hasMore = sel[:limit], true
		}
	}
	out := listJSON{Object: "list", Data: []any{}, HasMore: hasMore, URL: listURL}
	for _, it := range sel {
		out.Data = append(out.Data, it.render())
	}
	return out
}

func (e *Emulator) listProducts(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("limit", "starting_after", "ending_before", "active", "ids", "expand"); err != nil {
		return nil, "", err
	}
	acct := e.account(c.account, false)
	limit, after, before, err := pageParams(f, "product", func(id string) (uint64, bool) {
		if acct == nil || acct.products[id] == nil {
			return 0, false
		}
		return acct.products[id].seq, true
	})
	if err != nil {
		return nil, "", err
	}
	active, filterActive, err := f.boolean("active")
	if err != nil {
		return nil, "", err
	}
	ids, filterIDs, _, err := f.list("ids")
	if err != nil {
		return nil, "", err
	}
	var items []listItem
	if acct != nil {
		for _, p := range acct.products {
			if filterActive && p.active != active {
				continue
			}
			if filterIDs && !containsString(ids, p.id) {
				continue
			}
			items = append(items, listItem{seq: p.seq, render: func() any { return p.render() }})
		}
	}
	return cutPage(items, limit, after, before, "/v1/products"), "", nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// priceFields is the validated, not yet applied, content of a price create
// or update.
type priceFields struct {
	nickname      *string
	unsetNickname bool
	lookupKey     *string
	unsetLookup   bool
	transfer      bool
	active        *bool
	metadata      map[string]string
	metaCleared   bool
	setMeta       bool
}

func parsePriceFields(f *form, create bool) (priceFields, *apiError) {
	var pf priceFields
	if nick, ok, err := f.str("nickname"); err != nil {
		return pf, err
	} else if ok {
		if nick == "" {
			if create {
				return pf, errEmptyString("nickname")
			}
			pf.unsetNickname = true
		} else {
			pf.nickname = &nick
		}
	}
	if key, ok, err := f.str("lookup_key"); err != nil {
		return pf, err
	} else if ok {
		switch {
		case key == "" && create:
			return pf, errEmptyString("lookup_key")
		case key == "":
			pf.unsetLookup = true
		case utf8.RuneCountInString(key) > maxLookupKeyLen:
			return pf, errInvalid("", "lookup_key",
				"Invalid string: lookup_key must be at most %d characters.", maxLookupKeyLen)
		default:
			pf.lookupKey = &key
		}
	}
	if transfer, ok, err := f.boolean("transfer_lookup_key"); err != nil {
		return pf, err
	} else if ok {
		pf.transfer = transfer
	}
	if active, ok, err := f.boolean("active"); err != nil {
		return pf, err
	} else if ok {
		pf.active = &active
	}
	meta, ok, cleared, err := f.hash("metadata")
	if err != nil {
		return pf, err
	}
	if ok {
		pf.metadata, pf.metaCleared, pf.setMeta = meta, cleared, true
	}
	return pf, nil
}

// claimLookupKey checks that price may take key and returns the Price that
// holds it now (to be cleared when the change commits), or an error when it
// is held and transfer is false.
func claimLookupKey(acct *accountState, priceID, key string, transfer bool) (*priceRecord, *apiError) {
	if acct == nil {
		return nil, nil
	}
	holder := acct.lookupKeys[key]
	if holder == "" || holder == priceID {
		return nil, nil
	}
	if !transfer {
		return nil, errInvalid("", "lookup_key",
			"A price (`%s`) already uses that lookup key. Use `transfer_lookup_key` to transfer the lookup key to this price.", holder)
	}
	return acct.prices[holder], nil
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

func (e *Emulator) createPrice(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("product", "currency", "unit_amount", "nickname", "lookup_key",
		"transfer_lookup_key", "active", "metadata", "expand"); err != nil {
		return nil, "", err
	}
	product, ok, err := f.str("product")
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", errMissing("product")
	}
	if product == "" {
		return nil, "", errEmptyString("product")
	}
	currency, ok, err := f.str("currency")
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", errMissing("currency")
	}
	currency = strings.ToLower(currency)
	if !isCurrency(currency) {
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
	meta, err := mergeMetadata(nil, pf.metadata, pf.metaCleared)
	if err != nil {
		return nil, "", err
	}
	if e.lookupProduct(c.account, product) == nil {
		return nil, "", errNoSuch("product", "product", product)
	}
	acct := e.account(c.account, true)
	id := ""
	for id == "" || acct.prices[id] != nil {
		id = newID("price_")
	}
	var oldHolder *priceRecord
	if pf.lookupKey != nil {
		if oldHolder, err = claimLookupKey(acct, id, *pf.lookupKey, pf.transfer); err != nil {
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
		active:     pf.active == nil || *pf.active,
		metadata:   meta,
		created:    e.clock().Unix(),
	}
	acct.prices[id] = p
	if pf.lookupKey != nil {
		setLookupKey(acct, p, *pf.lookupKey, oldHolder)
	}
	return p.render(), id, nil
}

// setLookupKey gives key to p, taking it from oldHolder if there is one.
func setLookupKey(acct *accountState, p *priceRecord, key string, oldHolder *priceRecord) {
	if oldHolder != nil {
		oldHolder.lookupKey = nil
	}
	if p.lookupKey != nil && acct.lookupKeys[*p.lookupKey] == p.id {
		delete(acct.lookupKeys, *p.lookupKey)
	}
	k := key
	p.lookupKey = &k
	acct.lookupKeys[key] = p.id
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
	p := e.lookupPrice(c.account, c.id)
	if p == nil {
		return nil, c.id, errNoSuch("price", "id", c.id)
	}
	acct := e.account(c.account, false)
	meta := p.metadata
	if pf.setMeta {
		if meta, err = mergeMetadata(p.metadata, pf.metadata, pf.metaCleared); err != nil {
			return nil, c.id, err
		}
	}
	var oldHolder *priceRecord
	if pf.lookupKey != nil {
		if oldHolder, err = claimLookupKey(acct, p.id, *pf.lookupKey, pf.transfer); err != nil {
			return nil, c.id, err
		}
	}
	if pf.unsetNickname {
		p.nickname = nil
	} else if pf.nickname != nil {
		p.nickname = pf.nickname
	}
	switch {
	case pf.unsetLookup:
		if p.lookupKey != nil && acct.lookupKeys[*p.lookupKey] == p.id {
			delete(acct.lookupKeys, *p.lookupKey)
		}
		p.lookupKey = nil
	case pf.lookupKey != nil:
		setLookupKey(acct, p, *pf.lookupKey, oldHolder)
	}
	if pf.active != nil {
		p.active = *pf.active
	}
	p.metadata = meta
	return p.render(), p.id, nil
}

func (e *Emulator) getPrice(c *call) (any, string, *apiError) {
	if err := c.form.check("expand"); err != nil {
		return nil, c.id, err
	}
	p := e.lookupPrice(c.account, c.id)
	if p == nil {
		return nil, c.id, errNoSuch("price", "id", c.id)
	}
	return p.render(), p.id, nil
}

func (e *Emulator) listPrices(c *call) (any, string, *apiError) {
	f := c.form
	if err := f.check("limit", "starting_after", "ending_before", "active", "product", "currency",
		"lookup_keys", "type", "expand"); err != nil {
		return nil, "", err
	}
	acct := e.account(c.account, false)
	limit, after, before, err := pageParams(f, "price", func(id string) (uint64, bool) {
		if acct == nil || acct.prices[id] == nil {
			return 0, false
		}
		return acct.prices[id].seq, true
	})
	if err != nil {
		return nil, "", err
	}
	active, filterActive, err := f.boolean("active")
	if err != nil {
		return nil, "", err
	}
	product, filterProduct, err := f.str("product")
	if err != nil {
		return nil, "", err
	}
	currency, filterCurrency, err := f.str("currency")
	if err != nil {
		return nil, "", err
	}
	typ, filterType, err := f.str("type")
	if err != nil {
		return nil, "", err
	}
	if filterType && typ != "one_time" && typ != "recurring" {
		return nil, "", errInvalid("", "type", "Invalid type: must be one of one_time or recurring")
	}
	keys, filterKeys, _, err := f.list("lookup_keys")
	if err != nil {
		return nil, "", err
	}
	if len(keys) > maxLookupKeys {
		return nil, "", errInvalid("", "lookup_keys",
			"Invalid array: lookup_keys can have at most %d elements, but you passed %d.", maxLookupKeys, len(keys))
	}
	var items []listItem
	if acct != nil {
		for _, p := range acct.prices {
			switch {
			case filterActive && p.active != active,
				filterProduct && p.product != product,
				filterCurrency && p.currency != strings.ToLower(currency),
				filterType && typ != "one_time",
				filterKeys && (p.lookupKey == nil || !containsString(keys, *p.lookupKey)):
				continue
			}
			items = append(items, listItem{seq: p.seq, render: func() any { return p.render() }})
		}
	}
	return cutPage(items, limit, after, before, "/v1/prices"), "", nil
}
