package cmdutil

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Factory builds a command's dependencies on first use, so `--help` and bad
// input never touch the database or need a key.
type Factory struct {
	IO *IOStreams
	// Getenv reads configuration; tests inject their own.
	Getenv func(string) string
	// Clock defaults to time.Now.
	Clock func() time.Time

	// DatabaseURL and StripeAPIBase are the root's persistent flags, which
	// default to DATABASE_URL and STRIPE_API_BASE.
	DatabaseURL   string
	StripeAPIBase string
	// Schema is the root's --schema (env STRIPE_SYNC_SCHEMA): where River's
	// tables and ours live. Defaults to dbconn.DefaultSchema.
	Schema string
	// PoolMaxConns, when set before the first Pool call, sizes the pool
	// (unless the URL sets pool_max_conns). Defaults to pgx's default, which
	// suits one-shot commands; the worker holds a connection per job in
	// flight and needs more.
	PoolMaxConns int32

	mu   sync.Mutex
	pool *pgxpool.Pool
}

// NewFactory returns a Factory over streams and the process environment.
func NewFactory(io *IOStreams, getenv func(string) string) *Factory {
	return &Factory{IO: io, Getenv: getenv, Clock: time.Now}
}

// Pool opens (once) the pool on DatabaseURL, named applicationName in
// pg_stat_activity, with a statement timeout so a stuck query cannot hang a
// command or a worker forever, and the sync schema first on its
// search_path (see internal/dbconn).
func (f *Factory) Pool(ctx context.Context, applicationName string) (*pgxpool.Pool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pool != nil {
		return f.pool, nil
	}
	if f.DatabaseURL == "" {
		return nil, Usagef("no database: set DATABASE_URL or pass --database-url")
	}
	if err := dbconn.ValidateSchema(f.SchemaName()); err != nil {
		return nil, &UsageError{Err: err}
	}
	pool, err := dbconn.Open(ctx, f.DatabaseURL, dbconn.Options{
		ApplicationName: applicationName, Schema: f.SchemaName(), MaxConns: f.PoolMaxConns,
	})
	if errors.Is(err, dbconn.ErrBadURL) {
		return nil, Usagef("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if err != nil {
		return nil, err
	}
	f.pool = pool
	return pool, nil
}

// SchemaName is Schema or, when empty, dbconn.DefaultSchema.
func (f *Factory) SchemaName() string {
	if f.Schema == "" {
		return dbconn.DefaultSchema
	}
	return f.Schema
}

// RiverConfig returns config with the sync schema set, which every River
// client of ours needs: River's tables live there, not in public.
func (f *Factory) RiverConfig(config *river.Config) *river.Config {
	if config == nil {
		config = &river.Config{}
	}
	config.Schema = f.SchemaName()
	return config
}

// River opens the pool (see Pool) and an insert-only River client on it, the
// way every command that enqueues, lists or retries jobs needs them.
func (f *Factory) River(ctx context.Context, applicationName string) (*pgxpool.Pool, *river.Client[pgx.Tx], error) {
	pool, err := f.Pool(ctx, applicationName)
	if err != nil {
		return nil, nil, err
	}
	client, err := river.NewClient(riverpgxv5.New(pool), f.RiverConfig(nil))
	if err != nil {
		return nil, nil, err
	}
	return pool, client, nil
}

// Close releases what the Factory opened.
func (f *Factory) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pool != nil {
		f.pool.Close()
		f.pool = nil
	}
}

// StripeOptions are the Stripe client settings a command may add.
type StripeOptions struct {
	Limiter  stripeclient.Limiter
	Logger   *slog.Logger
	Observer func(op string, status int, d time.Duration)
	HTTP     *http.Client
}

// StripeSecretKey returns STRIPE_SECRET_KEY. It is read from the environment
// only, never from a flag, so it cannot show in `ps`.
func (f *Factory) StripeSecretKey() (string, error) {
	key := strings.TrimSpace(f.Getenv("STRIPE_SECRET_KEY"))
	if key == "" {
		return "", Usagef("STRIPE_SECRET_KEY is not set")
	}
	return key, nil
}

// StripeClient builds the stripe-go client on StripeAPIBase.
func (f *Factory) StripeClient(opts StripeOptions) (*stripeclient.StripeClient, error) {
	key, err := f.StripeSecretKey()
	if err != nil {
		return nil, err
	}
	sc, err := stripeclient.New(stripeclient.Options{
		SecretKey: key, APIBase: f.StripeAPIBase, Limiter: opts.Limiter,
		Logger: opts.Logger, Observer: opts.Observer, HTTPClient: opts.HTTP,
	})
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return sc, nil
}
