// Package dbconn opens the PostgreSQL pools every part of stripe-sync uses:
// the CLI, the worker, the tests and the benchmarks. It is the one place
// that decides how a connection finds the sync schema.
//
// Everything `syncctl migrate` creates lives in its own schema (default
// "stripe_sync") so that Supabase's Data API, which serves schema public to
// anyone holding the anon key, cannot reach it. River is told the schema
// explicitly (river.Config.Schema); the project's own SQL names its tables
// unqualified and finds them through the connection's search_path, which
// Config sets after connecting ("<schema>", public: the sync schema first,
// the host's tables after it). SECURITY DEFINER functions never rely on it: they run with an
// empty search_path and qualified names.
package dbconn

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSchema is the schema migrate installs into when none is named.
const DefaultSchema = "stripe_sync"

// schemaRE is stricter than PostgreSQL: lower case only, so the name needs no
// quoting anywhere (SQL, River's "<schema>.river_insert" channel, goose's
// "<schema>.<table>" version table), and at most 50 bytes, River's limit for
// its notification channel names.
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

// ValidateSchema returns an error saying what a schema name must look like
// when name is not one.
func ValidateSchema(name string) error {
	if !schemaRE.MatchString(name) {
		return fmt.Errorf("schema %q: must be 1-50 lower-case letters, digits or underscores, not starting with a digit", name)
	}
	if name == "public" || name == "pg_catalog" || name == "information_schema" {
		return fmt.Errorf("schema %q: stripe-sync needs a schema of its own, not %s", name, name)
	}
	return nil
}

// SearchPath is the search_path a connection of ours runs with.
func SearchPath(schema string) string { return schema + ", public" }

// Options describe a pool.
type Options struct {
	// ApplicationName shows in pg_stat_activity, so an operator can tell
	// the worker from the CLI. Required.
	ApplicationName string
	// Schema is the sync schema. Defaults to DefaultSchema.
	Schema string
	// MaxConns sizes the pool unless the URL sets pool_max_conns. Defaults
	// to pgx's default.
	MaxConns int32
	// StatementTimeout unless the URL sets statement_timeout. Defaults to
	// 60 s, so a stuck query cannot hang a command or a worker forever.
	StatementTimeout time.Duration
}

// ErrBadURL is returned for a connection string pgx cannot parse. pgx's own
// message quotes the URL, password included, so it is never passed on.
var ErrBadURL = errors.New("not a valid PostgreSQL connection string")

// Config parses url into a pool configuration with opts applied.
func Config(url string, opts Options) (*pgxpool.Config, error) {
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if err := ValidateSchema(opts.Schema); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, ErrBadURL
	}
	if opts.ApplicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = opts.ApplicationName
	}
	if opts.MaxConns > 0 && !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
	}
	// Settings go in a SET after connecting, not in the startup packet:
	// PgBouncer refuses startup parameters it does not know
	// ("unsupported startup parameter: statement_timeout").
	setup := "SET search_path TO " + SearchPath(opts.Schema)
	if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		timeout := opts.StatementTimeout
		if timeout <= 0 {
			timeout = 60 * time.Second
		}
		setup += fmt.Sprintf("; SET statement_timeout = %d", timeout.Milliseconds())
	}
	previous := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if previous != nil {
			if err := previous(ctx, conn); err != nil {
				return err
			}
		}
		_, err := conn.Exec(ctx, setup)
		return err
	}
	return cfg, nil
}

// Open opens a pool on url (see Config) and checks that it answers within
// 10 s. Errors never quote the URL.
func Open(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := Config(url, opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}
