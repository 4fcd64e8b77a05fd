package emulator

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

const (
	maxImages      = 8
	maxImageURLLen = 2048
)

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

func (p *productRecord) sequence() uint64 { return p.seq }
func (p *productRecord) objectID() string { return p.id }
func (p *productRecord) createdAt() int64 { return p.created }
func (p *productRecord) renderAny() any   { return p.render() }

func (p *productRecord) render() productJSON {
	return productJSON{
		ID:                p.id,
		Object:            "product",
		Active:            p.active,
		Attributes:        []string{},
		Created:           p.created,
		Description:       copyStringPtr(p.description),
		Features:          []any{},
		Images:            append([]string{}, p.images...),
		MarketingFeatures: []any{},
		Metadata:          copyMetadata(p.metadata),
		Name:              p.name,
		Type:              "service",
		Updated:           p.updated,
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

// productFields is the validated, not yet applied, content of a product
// create or update.
type productFields struct {
	sharedFields
	name        *string
	description *string
	unsetDesc   bool
	images      []string
	setImages   bool
}

func parseProductFields(f *form, create bool) (productFields, *apiError) {
	var pf productFields
	var err *apiError
	if pf.sharedFields, err = parseSharedFields(f); err != nil {
		return pf, err
	}
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
	if pf.description, pf.unsetDesc, err = optionalText(f, "description", create); err != nil {
		return pf, err
	}
	images, ok, cleared, err := f.list("images")
	if err != nil {
		return pf, err
	}
	if ok && !cleared {
		if err := validateImages(images); err != nil {
			return pf, err
		}
	}
	pf.images, pf.setImages = images, ok
	return pf, nil
}

func validateImages(vals []string) *apiError {
	if len(vals) > maxImages {
		return errInvalid("", "images",
			"Invalid array: images can have at most %d elements, but you passed %d.", maxImages, len(vals))
	}
	for i, v := range vals {
		u, err := url.Parse(v)
		if v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			len(v) > maxImageURLLen {
			return errInvalid("url_invalid", "images["+strconv.Itoa(i)+"]", "Not a valid URL")
		}
	}
	return nil
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
	meta, err := pf.mergedMetadata(nil)
	if err != nil {
		return nil, "", err
	}
	acct := e.account(c.account, true)
	if _, taken := acct.products[id]; hasID && taken {
		return nil, "", errAlreadyExists("id", "Product already exists.")
	}
	for !hasID && (id == "" || acct.products[id] != nil) {
		id = newID("prod_")
	}
	now := e.clock().Unix()
	e.seq++
	p := &productRecord{
		seq:         e.seq,
		id:          id,
		name:        *pf.name,
		description: pf.description,
		images:      append([]string{}, pf.images...),
		active:      pf.activeOr(true),
		metadata:    meta,
		created:     now,
		updated:     now,
	}
	acct.products[id] = p
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
	// Parameters are validated before the endpoint looks the object up.
	if _, err := pf.mergedMetadata(nil); err != nil {
		return nil, c.id, err
	}
	p := e.account(c.account, false).products[c.id]
	if p == nil {
		return nil, c.id, errNoSuch("product", "id", c.id)
	}
	meta, err := pf.mergedMetadata(p.metadata)
	if err != nil {
		return nil, c.id, err
	}
	if pf.name != nil {
		p.name = *pf.name
	}
	setText(&p.description, pf.description, pf.unsetDesc)
	if pf.setImages {
		p.images = append([]string{}, pf.images...)
	}
	p.active = pf.activeOr(p.active)
	p.metadata = meta
	p.updated = e.clock().Unix()
	return p.render(), p.id, nil
}

func (e *Emulator) listProducts(c *call) (any, string, *apiError) {
	if err := c.form.check("limit", "starting_after", "expand"); err != nil {
		return nil, "", err
	}
	return listObjects(c.form, "product", "/v1/products", e.account(c.account, false).products,
		func(*productRecord) bool { return true })
}
