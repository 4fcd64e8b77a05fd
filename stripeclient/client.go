// Package stripeclient is the project's only door to Stripe: a narrow
// interface over the Products and Prices the sync manages, its stripe-go v76
// implementation, error classification and idempotency keys. It paces
// requests through a Limiter; the limit shared by every worker process is
// stripeclient/pglimiter's, and stripeclient/emulator is the stateful Stripe
// imitation tests and the demo run against.
package stripeclient

import (
	"context"
)

// Client is everything the sync asks of Stripe. Every call acts on one
// connected account (the Stripe-Account header); an empty Account means the
// platform account itself.
//
// Errors returned by a Client are *Error values (test with errors.As) whose
// Class tells the caller whether to retry, wait, adopt or give up.
type Client interface {
	// CreateProduct creates a Product. When params.ID is set the Product gets
	// that id; Stripe answers ClassAlreadyExists if the id is taken.
	CreateProduct(ctx context.Context, call Call, params ProductParams) (*Product, error)
	// UpdateProduct overwrites the Product's mutable fields with params (ID
	// is ignored). Metadata keys absent from params are left as they are.
	// Returns an error of ClassNotFound if the Product does not exist.
	UpdateProduct(ctx context.Context, call Call, id string, params ProductParams) (*Product, error)
	// ArchiveProduct sets active=false. Nothing is ever hard-deleted.
	// Returns an error of ClassNotFound if the Product does not exist.
	ArchiveProduct(ctx context.Context, call Call, id string) (*Product, error)
	// GetProduct returns an error of ClassNotFound if the Product does not
	// exist.
	GetProduct(ctx context.Context, call Call, id string) (*Product, error)
	// ListProducts calls fn for every Product on the account, page by page,
	// and stops at fn's first error.
	ListProducts(ctx context.Context, call Call, fn func(*Product) error) error

	// CreatePrice creates a Price; when params.LookupKey is set it is created
	// with transfer_lookup_key, so the key moves to the new Price.
	CreatePrice(ctx context.Context, call Call, params PriceParams) (*Price, error)
	// UpdatePrice overwrites the Price's mutable fields (nickname, metadata,
	// active, lookup_key). Amount, currency and product are immutable in
	// Stripe and ignored here. Returns ClassNotFound if the Price is missing.
	UpdatePrice(ctx context.Context, call Call, id string, params PriceParams) (*Price, error)
	// ArchivePrice sets active=false. Returns ClassNotFound if the Price is
	// missing.
	ArchivePrice(ctx context.Context, call Call, id string) (*Price, error)
	// GetPrice returns an error of ClassNotFound if the Price does not exist.
	GetPrice(ctx context.Context, call Call, id string) (*Price, error)
	// FindPriceByLookupKey returns the Price holding lookupKey, or nil and no
	// error when no Price holds it.
	FindPriceByLookupKey(ctx context.Context, call Call, lookupKey string) (*Price, error)
	// ListPrices calls fn for every Price on the account (of one Product
	// when product is not empty), active or not, page by page.
	ListPrices(ctx context.Context, call Call, product string, fn func(*Price) error) error
}

// Call carries what every request needs besides its parameters.
type Call struct {
	// Account is the connected account id (acct_...), sent as the
	// Stripe-Account header. Empty means the platform account.
	Account string
	// IdempotencyScope names the logical change a write belongs to, for
	// example "event:<uuid>:v7". Writes get the Idempotency-Key
	// scope + operation + hash of the parameters, so a retried attempt of the
	// same change replays Stripe's first answer, while a later change with
	// equal parameters (A -> B -> A) is a new request. Empty sends no key.
	// Reads never send one.
	IdempotencyScope string
	// IdempotencySalt, when not empty, is hashed into the Idempotency-Key
	// with the parameters, so that a retry of the same change sends a new
	// key. Set a value not used before for this change (for example how
	// many 5xx answers it has had: "1", "2", ...) on the attempt after a
	// failure for which NeedsNewKey is true, since Stripe replays a stored
	// 500 to every request with the old key; keep it as it was after any
	// other failure, above all one with no answer (AnswerNone), so that
	// Stripe replays what it may have applied. Defaults to "": the key is
	// the one IdempotencyKey gave before salts existed.
	IdempotencySalt string
}

// ProductParams is the Stripe-visible state the sync gives a Product.
type ProductParams struct {
	// ID is used on create only: the deterministic id derived from the event.
	ID          string
	Name        string
	Description string
	// Images replaces the Product's images; an empty slice clears them.
	Images   []string
	Active   bool
	Metadata map[string]string
}

// Product is a Stripe Product as the sync sees it.
type Product struct {
	ID          string
	Name        string
	Description string
	Images      []string
	Active      bool
	Metadata    map[string]string
	// Created is the Unix time Stripe gave the object.
	Created int64
}

// PriceParams is the Stripe-visible state the sync gives a Price.
type PriceParams struct {
	Product string
	// Currency is a lower-case ISO code, for example "aud".
	Currency string
	// UnitAmount is in the currency's minor units (cents; yen for JPY).
	UnitAmount int64
	Nickname   string
	LookupKey  string
	Active     bool
	Metadata   map[string]string
}

// Price is a Stripe Price as the sync sees it.
type Price struct {
	ID         string
	Product    string
	Currency   string
	UnitAmount int64
	Nickname   string
	LookupKey  string
	Active     bool
	Metadata   map[string]string
	Created    int64
}
