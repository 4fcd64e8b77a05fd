package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// codeAccountInvalid is Stripe's error code for a connected account that no
// longer lets the platform in: "Application access may have been revoked"
// (https://docs.stripe.com/connect/webhooks: account.application.deauthorized
// is the event that says so).
const codeAccountInvalid = "account_invalid"

// unreachableCacheTTL is how long a process trusts its copy of
// stripe_sync_unreachable_account before reading it again. A stale
// "reachable" costs one request that Stripe answers 403 (and marks the
// account again); a stale "unreachable" is checked against the table before
// a job is skipped on it, so a cleared account is never skipped.
const unreachableCacheTTL = 2 * time.Second

// guardQueryTimeout bounds each read of the marks.
const guardQueryTimeout = time.Second

// AccountUnreachableError is a request to a connected account that refused
// the platform: Stripe answered 403 account_invalid, or the account is
// marked unreachable and the request was not sent. It wraps the
// *stripeclient.Error (of ClassAuth), so callers that only classify still
// treat it as not transient.
type AccountUnreachableError struct {
	Account string
	// Reason says why, for the sync log and `syncctl status`.
	Reason string
	Err    error
}

func (e *AccountUnreachableError) Error() string {
	return fmt.Sprintf("connected account %s is unreachable: %s", e.Account, e.Reason)
}

func (e *AccountUnreachableError) Unwrap() error { return e.Err }

// accountGuard is the Client the workers use: it refuses, without sending
// them, requests to accounts marked unreachable, and turns a 403
// account_invalid into an *AccountUnreachableError naming the account.
type accountGuard struct {
	stripeclient.Client
	pool *pgxpool.Pool
	now  func() time.Time

	mu       sync.Mutex
	loadedAt time.Time
	marked   map[string]string
}

func guardAccounts(deps *Deps) stripeclient.Client {
	if g, ok := deps.Stripe.(*accountGuard); ok {
		return g
	}
	return &accountGuard{Client: deps.Stripe, pool: deps.Pool, now: deps.Clock}
}

// check returns an *AccountUnreachableError when account is marked
// unreachable in the table (not only in this process's copy of it).
func (g *accountGuard) check(ctx context.Context, op, account string) error {
	if account == "" {
		return nil
	}
	// The caller's job holds a connection of the same pool for its round:
	// never wait long for another. Without the table, Stripe's own 403
	// answers for the account.
	ctx, cancel := context.WithTimeout(ctx, guardQueryTimeout)
	defer cancel()
	g.mu.Lock()
	if g.marked == nil || g.now().Sub(g.loadedAt) > unreachableCacheTTL {
		g.mu.Unlock()
		marked, err := loadUnreachable(ctx, g.pool)
		if err != nil {
			// The table is an optimisation over Stripe's own 403: without
			// it the request goes out and Stripe refuses it.
			return nil
		}
		g.mu.Lock()
		g.marked, g.loadedAt = marked, g.now()
	}
	_, cached := g.marked[account]
	g.mu.Unlock()
	if !cached {
		return nil
	}
	var reason string
	err := g.pool.QueryRow(ctx, `SELECT reason FROM stripe_sync_unreachable_account WHERE account = $1`, account).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		g.mu.Lock()
		delete(g.marked, account)
		g.mu.Unlock()
		return nil
	}
	if err != nil {
		return nil
	}
	return &AccountUnreachableError{Account: account, Reason: reason, Err: &stripeclient.Error{
		Class: stripeclient.ClassAuth, Op: op, HTTPStatus: http.StatusForbidden, Code: codeAccountInvalid,
		Message: "not sent: the account is marked unreachable",
	}}
}

// seen wraps a 403 account_invalid from Stripe and remembers the account.
func (g *accountGuard) seen(account string, err error) error {
	var se *stripeclient.Error
	if account == "" || !errors.As(err, &se) || se.HTTPStatus != http.StatusForbidden || se.Code != codeAccountInvalid {
		return err
	}
	reason := "Stripe answered 403 account_invalid (" + se.Message + ")"
	g.mu.Lock()
	if g.marked != nil {
		g.marked[account] = reason
	}
	g.mu.Unlock()
	return &AccountUnreachableError{Account: account, Reason: reason, Err: err}
}

func loadUnreachable(ctx context.Context, pool *pgxpool.Pool) (map[string]string, error) {
	rows, err := pool.Query(ctx, `SELECT account, reason FROM stripe_sync_unreachable_account`)
	if err != nil {
		return nil, fmt.Errorf("read unreachable accounts: %w", err)
	}
	marked := map[string]string{}
	var account, reason string
	if _, err := pgx.ForEachRow(rows, []any{&account, &reason}, func() error {
		marked[account] = reason
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read unreachable accounts: %w", err)
	}
	return marked, nil
}

func guarded[T any](g *accountGuard, ctx context.Context, op string, call stripeclient.Call, fn func() (T, error)) (T, error) {
	if err := g.check(ctx, op, call.Account); err != nil {
		var zero T
		return zero, err
	}
	v, err := fn()
	return v, g.seen(call.Account, err)
}

func (g *accountGuard) CreateProduct(ctx context.Context, call stripeclient.Call, p stripeclient.ProductParams) (*stripeclient.Product, error) {
	return guarded(g, ctx, "create_product", call, func() (*stripeclient.Product, error) { return g.Client.CreateProduct(ctx, call, p) })
}

func (g *accountGuard) UpdateProduct(ctx context.Context, call stripeclient.Call, id string, p stripeclient.ProductParams) (*stripeclient.Product, error) {
	return guarded(g, ctx, "update_product", call, func() (*stripeclient.Product, error) { return g.Client.UpdateProduct(ctx, call, id, p) })
}

func (g *accountGuard) ArchiveProduct(ctx context.Context, call stripeclient.Call, id string) (*stripeclient.Product, error) {
	return guarded(g, ctx, "archive_product", call, func() (*stripeclient.Product, error) { return g.Client.ArchiveProduct(ctx, call, id) })
}

func (g *accountGuard) GetProduct(ctx context.Context, call stripeclient.Call, id string) (*stripeclient.Product, error) {
	return guarded(g, ctx, "get_product", call, func() (*stripeclient.Product, error) { return g.Client.GetProduct(ctx, call, id) })
}

func (g *accountGuard) ListProducts(ctx context.Context, call stripeclient.Call, fn func(*stripeclient.Product) error) error {
	_, err := guarded(g, ctx, "list_products", call, func() (struct{}, error) { return struct{}{}, g.Client.ListProducts(ctx, call, fn) })
	return err
}

func (g *accountGuard) CreatePrice(ctx context.Context, call stripeclient.Call, p stripeclient.PriceParams) (*stripeclient.Price, error) {
	return guarded(g, ctx, "create_price", call, func() (*stripeclient.Price, error) { return g.Client.CreatePrice(ctx, call, p) })
}

func (g *accountGuard) UpdatePrice(ctx context.Context, call stripeclient.Call, id string, p stripeclient.PriceParams) (*stripeclient.Price, error) {
	return guarded(g, ctx, "update_price", call, func() (*stripeclient.Price, error) { return g.Client.UpdatePrice(ctx, call, id, p) })
}

func (g *accountGuard) ArchivePrice(ctx context.Context, call stripeclient.Call, id string) (*stripeclient.Price, error) {
	return guarded(g, ctx, "archive_price", call, func() (*stripeclient.Price, error) { return g.Client.ArchivePrice(ctx, call, id) })
}

func (g *accountGuard) GetPrice(ctx context.Context, call stripeclient.Call, id string) (*stripeclient.Price, error) {
	return guarded(g, ctx, "get_price", call, func() (*stripeclient.Price, error) { return g.Client.GetPrice(ctx, call, id) })
}

func (g *accountGuard) FindPriceByLookupKey(ctx context.Context, call stripeclient.Call, key string) (*stripeclient.Price, error) {
	return guarded(g, ctx, "list_prices", call, func() (*stripeclient.Price, error) { return g.Client.FindPriceByLookupKey(ctx, call, key) })
}

func (g *accountGuard) ListPrices(ctx context.Context, call stripeclient.Call, product string, fn func(*stripeclient.Price) error) error {
	_, err := guarded(g, ctx, "list_prices", call, func() (struct{}, error) { return struct{}{}, g.Client.ListPrices(ctx, call, product, fn) })
	return err
}

// markUnreachableSQL records an account as unreachable; the first reason
// stays.
const markUnreachableSQL = `
	INSERT INTO stripe_sync_unreachable_account (account, reason) VALUES ($1, $2)
	ON CONFLICT (account) DO NOTHING`

// markFromRound is markUnreachableSQL for a refusal a round saw, recorded
// with the round's outcome. It marks nothing if the entity moved past the
// version the round acted on: clearing a mark (clearUnreachable) enqueues
// every entity listing the account, which moves its version, so a refusal
// seen before the clear cannot put the mark back after it. It runs last in
// the record (rankMarks), after the entity's own state row is locked, so a
// clear still in flight is waited for and then seen.
func markFromRound(account, reason string, ref entityRef, version int64) stmt {
	return stmt{sql: `
		INSERT INTO stripe_sync_unreachable_account (account, reason)
		SELECT $1, $2
		WHERE NOT EXISTS (SELECT FROM stripe_sync_state
		                  WHERE entity_type = $3 AND entity_id = $4 AND wanted_version > $5)
		ON CONFLICT (account) DO NOTHING`,
		args: []any{account, reason, string(ref.kind), ref.id, version}, rank: rankMarks}
}

// skipUnreachable turns a round that failed on an unreachable account into
// a skip, recorded with the mark, so the job completes instead of retrying
// for hours (DESIGN.md's error table: 403 account_invalid).
func skipUnreachable(o *outcome, ref entityRef) {
	var ue *AccountUnreachableError
	if o.err == nil || !errors.As(o.err, &ue) {
		return
	}
	// The mark locks no host or state row: its rank only places it last.
	o.pre = append(o.pre, markFromRound(ue.Account, ue.Reason, ref, o.version))
	o.account = ue.Account
	o.err = nil
	o.skip(o.action, fmt.Sprintf("connected account %s is unreachable: %s; "+
		"the sync resumes when the organisation's stripe_onbehalfof changes or `syncctl enqueue org` runs", ue.Account, ue.Reason))
}

// parkRefused ends a round that did everything but archive objects on
// accounts that refused us (deauthorised: Stripe answers every request there
// 403 until the organisation lets the platform in again). Retrying would
// only burn River's attempts in seconds, each refused without a request
// (the guard), and end discarded. Instead the accounts are marked
// unreachable, they stay listed in the entity's accounts, what was
// recorded stays as it was (in doubt: it names the objects the clean-up
// must still archive), and the job completes. When the mark is cleared
// (clearUnreachable: the organisation's account changes, `syncctl enqueue
// org`), every entity still listing the account is enqueued, and its job
// archives what is left there.
func parkRefused(o *outcome, ref entityRef) {
	var accounts []string
	switch {
	case o.err == nil && len(o.refused) > 0:
		accounts = uniqueNonEmpty(o.refused...)
		o.pushed = false
	case o.err != nil && errors.Is(o.err, errRefused):
		accounts = uniqueNonEmpty(o.accounts...)
		o.err = nil
		o.skip(o.action, "")
	default:
		return
	}
	reason := "refused to archive an object of ours (403: deauthorised?)"
	for _, account := range accounts {
		o.pre = append(o.pre, markFromRound(account, reason, ref, o.version))
	}
	note := fmt.Sprintf("could not archive on %s, which refuses us: it stays listed and is archived once the account "+
		"lets us in again (its organisation's account changes, or `syncctl enqueue org`)", strings.Join(accounts, ", "))
	o.message = strings.TrimPrefix(o.message+"; "+note, "; ")
}

// clearUnreachable forgets that the organisation's accounts (its current one
// and those its events' objects were written to) refused the platform: its job runs when the account changes or an operator
// enqueues it, and then re-enqueues the whole catalogue. Every entity whose
// objects may still be active on a cleared account (listed in its
// accounts: a move or a delete could not archive there) is enqueued too, in
// the bulk lane, events before tickets (the host's lock order).
func clearUnreachable(ctx context.Context, tx pgx.Tx, orgID string, logger *slog.Logger) error {
	// The organisation's current account, and every account its events'
	// objects were written to (an account it moved away from, whose
	// clean-up the mark holds back).
	rows, err := tx.Query(ctx, `
		DELETE FROM stripe_sync_unreachable_account u
		WHERE u.account IN (
			SELECT o.stripe_onbehalfof FROM organisations o WHERE o.organisation_id = $1
			UNION
			SELECT unnest(s.accounts) FROM stripe_sync_state s
			JOIN events e ON s.entity_type = 'event' AND s.entity_id = e.event_id
			WHERE e.organisation_id = $1)
		RETURNING u.account`, orgID)
	if err != nil {
		return fmt.Errorf("clear unreachable account of organisation %s: %w", orgID, err)
	}
	cleared, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("clear unreachable account of organisation %s: %w", orgID, err)
	}
	for _, account := range cleared {
		logger.Info("connected account no longer marked unreachable", slog.String("account", account), slog.String("organisation_id", orgID))
	}
	if len(cleared) == 0 {
		return nil
	}
	for _, kind := range []string{"event", "ticket"} {
		if _, err := tx.Exec(ctx, `
			SELECT stripe_sync_enqueue_many($1, array_agg(entity_id ORDER BY entity_id), $3)
			FROM stripe_sync_state WHERE entity_type = $1 AND accounts && $2::text[]
			HAVING count(*) > 0`, kind, cleared, outbox.PriorityBulk); err != nil {
			return fmt.Errorf("enqueue what is left on %v: %w", cleared, err)
		}
	}
	return nil
}

// UnreachableAccount is a connected account marked unreachable.
type UnreachableAccount struct {
	Account string    `json:"account"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
	// Organisations are the ids of the organisations using the account.
	Organisations []string `json:"organisations"`
}

// UnreachableAccounts lists the accounts marked unreachable, oldest first.
func UnreachableAccounts(ctx context.Context, pool *pgxpool.Pool) ([]UnreachableAccount, error) {
	rows, err := pool.Query(ctx, `
		SELECT u.account, u.reason, u.since,
		       coalesce(array_agg(o.organisation_id::text ORDER BY o.organisation_id) FILTER (WHERE o.organisation_id IS NOT NULL), '{}')
		FROM stripe_sync_unreachable_account u
		LEFT JOIN organisations o ON o.stripe_onbehalfof = u.account
		GROUP BY u.account, u.reason, u.since
		ORDER BY u.since, u.account`)
	if err != nil {
		return nil, fmt.Errorf("read unreachable accounts: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (UnreachableAccount, error) {
		var a UnreachableAccount
		err := row.Scan(&a.Account, &a.Reason, &a.Since, &a.Organisations)
		return a, err
	})
}
