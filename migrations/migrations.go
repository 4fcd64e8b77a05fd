// Package migrations installs stripe-sync into a LodgeTix database, all of it
// in a schema of its own (default "stripe_sync"): River's tables (through
// rivermigrate), then the project's embedded SQL (through goose, whose
// version table lives there too): the Stripe id columns on the host tables,
// the sync tables and view, the enqueue function and the triggers, the only
// objects placed on the host's tables. Every run ends with a lockdown that
// leaves the schema reachable by its owner and the worker roles alone. It
// also carries the host-schema fixture that tests and the demo run against;
// production never installs it.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strings"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lodgetix/stripe-sync/internal/dbconn"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

//go:embed lockdown.sql
var lockdownSQL string

//go:embed fixture/host_schema.sql
var hostSchemaSQL string

//go:embed fixture/sample_data.sql
var sampleDataSQL string

// DefaultSchema is the schema Up installs into when Options.Schema is empty.
const DefaultSchema = dbconn.DefaultSchema

// VersionTable is goose's bookkeeping table for the project's own migrations,
// in the sync schema, named so that it cannot collide with a host
// application's goose table.
const VersionTable = "stripe_sync_migrations"

// schemaToken is how the SQL files from 005 on name the sync schema; Up
// renders it. Files 001-004 predate it and name nothing qualified: they run
// with the sync schema first on search_path.
const schemaToken = "{{schema}}"

// HostTables are the LodgeTix tables the project hangs its triggers on.
var HostTables = []string{"organisations", "events", "event_tickets"}

// MissingHostTableError says which host table is absent: stripe-sync installs
// into an existing LodgeTix database and never creates the host's tables.
type MissingHostTableError struct {
	Table string
}

func (e *MissingHostTableError) Error() string {
	return fmt.Sprintf("host table %q is missing: stripe-sync installs into an existing LodgeTix database", e.Table)
}

// MissingRoleError says that a worker role named to Up does not exist.
// Creating login roles (and their passwords) is the operator's job.
type MissingRoleError struct {
	Role string
}

func (e *MissingRoleError) Error() string {
	return fmt.Sprintf("worker role %q does not exist: create it first (CREATE ROLE %s LOGIN PASSWORD '...')", e.Role, e.Role)
}

// SharedRiverError says that River's tables in public, which an earlier
// version of stripe-sync shared, hold another application's jobs, so Up
// will not move them into the sync schema.
type SharedRiverError struct {
	Kinds []string
}

func (e *SharedRiverError) Error() string {
	return fmt.Sprintf("public.river_job holds jobs of other applications (%s): River's tables are shared, so they are not moved; migrate those jobs first", strings.Join(e.Kinds, ", "))
}

// Options tune Up.
type Options struct {
	// Schema is where everything is installed. Defaults to DefaultSchema.
	Schema string
	// WorkerRole, when set, is an existing role granted exactly what
	// `syncctl worker` needs: the schema's tables, sequences and functions,
	// SELECT on the host tables and UPDATE of their Stripe id columns. It is
	// remembered: later runs keep its grants.
	WorkerRole string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Result says what Up did; River and Project are empty on a second run.
type Result struct {
	// Schema is where everything lives.
	Schema string
	// Moved lists the objects an earlier version had installed in public,
	// moved into Schema on this run.
	Moved   []string
	River   []int
	Project []string
}

var roleRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)

// Up brings the database at url up to date: River's migrations and the
// project's, in the sync schema, then the lockdown. It is idempotent, and
// safe to run while workers and the host application run (each step is one
// transaction). A database migrated by an earlier version, with everything
// in public, is moved into the schema first, in one transaction, with
// nothing copied. Returns a *MissingHostTableError, before changing
// anything, when a host table is absent, and a *MissingRoleError when
// Options.WorkerRole names no role.
func Up(ctx context.Context, url string, opts Options) (*Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
	}
	if err := dbconn.ValidateSchema(opts.Schema); err != nil {
		return nil, err
	}
	if opts.WorkerRole != "" && !roleRE.MatchString(opts.WorkerRole) {
		return nil, fmt.Errorf("worker role %q: not a plain role name", opts.WorkerRole)
	}
	pool, err := openPool(ctx, url, opts.Schema)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	if err := checkHostTables(ctx, pool); err != nil {
		return nil, err
	}
	if opts.WorkerRole != "" {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, opts.WorkerRole).Scan(&exists); err != nil {
			return nil, fmt.Errorf("check worker role: %w", err)
		}
		if !exists {
			return nil, &MissingRoleError{Role: opts.WorkerRole}
		}
	}
	res := &Result{Schema: opts.Schema}

	// A new schema grants nothing to anyone but its owner.
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+opts.Schema); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", opts.Schema, err)
	}
	if res.Moved, err = moveFromPublic(ctx, pool, opts.Schema); err != nil {
		return nil, err
	}

	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: opts.Logger, Schema: opts.Schema})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	riverRes, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.River = append(res.River, v.Version)
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db, opts.Schema)
	if err != nil {
		return nil, err
	}
	projectRes, err := provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("stripe-sync migrations: %w", err)
	}
	for _, r := range projectRes {
		res.Project = append(res.Project, r.Source.Path)
	}

	if err := lockdown(ctx, pool, opts.Schema, opts.WorkerRole); err != nil {
		return nil, err
	}
	return res, nil
}

// openPool opens Up's pool: one connection, so goose and River each run a
// transaction at a time and every statement sees the settings made after
// connecting. check_function_bodies is off, as in pg_dump's scripts: files
// 001-004 pinned their functions' search_path to public, where the bodies'
// tables no longer are; 005 re-creates every one of them, validated.
func openPool(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	cfg, err := dbconn.Config(url, dbconn.Options{
		ApplicationName: "syncctl migrate", Schema: schema, MaxConns: 1, StatementTimeout: 10 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	setPath := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if err := setPath(ctx, conn); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "SET check_function_bodies = off")
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// lockdown records the worker role, if any, and runs lockdown.sql.
func lockdown(ctx context.Context, pool *pgxpool.Pool, schema, workerRole string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if workerRole != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.stripe_sync_worker_role (role_name) VALUES ($1) ON CONFLICT DO NOTHING`, workerRole); err != nil {
				return fmt.Errorf("record worker role: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, render(lockdownSQL, schema)); err != nil {
			return fmt.Errorf("lock down schema %s: %w", schema, err)
		}
		return nil
	})
}

// moveFromPublic moves what an earlier version installed in public (River's
// tables and types, ours, goose's version table) into schema, and re-creates
// the functions for their new home, in one transaction: host writes firing
// the triggers wait for it, then find everything in place. It does nothing
// unless public holds our version table and schema does not.
func moveFromPublic(ctx context.Context, pool *pgxpool.Pool, schema string) ([]string, error) {
	var legacy bool
	err := pool.QueryRow(ctx, `SELECT to_regclass('public.`+VersionTable+`') IS NOT NULL AND to_regclass($1) IS NULL`,
		schema+"."+VersionTable).Scan(&legacy)
	if err != nil || !legacy {
		return nil, err
	}
	fix, err := upSection("005_own_schema.sql", schema)
	if err != nil {
		return nil, err
	}
	var moved []string
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var haveRiver bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('public.river_job') IS NOT NULL`).Scan(&haveRiver); err != nil {
			return err
		}
		if haveRiver {
			kinds, err := pgx.CollectRows(mustQuery(ctx, tx, `
				SELECT DISTINCT kind FROM public.river_job WHERE kind NOT LIKE 'stripe\_sync\_%' ORDER BY kind LIMIT 5`),
				pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("check public.river_job: %w", err)
			}
			if len(kinds) > 0 {
				return &SharedRiverError{Kinds: kinds}
			}
		}
		statements, err := pgx.CollectRows(mustQuery(ctx, tx, `
			SELECT format('ALTER %s public.%I SET SCHEMA %I',
			       CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
			       c.relname, $1::text)
			FROM pg_class c
			WHERE c.relnamespace = 'public'::regnamespace
			  AND (c.relname LIKE 'river\_%' OR c.relname LIKE 'stripe\_sync\_%')
			  AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
			  -- Sequences owned by a column move with their table.
			  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
			UNION ALL
			SELECT format('ALTER TYPE public.%I SET SCHEMA %I', t.typname, $1::text)
			FROM pg_type t
			WHERE t.typnamespace = 'public'::regnamespace AND t.typname LIKE 'river\_%' AND t.typtype = 'e'
			UNION ALL
			SELECT format('ALTER ROUTINE %s SET SCHEMA %I', p.oid::regprocedure, $1::text)
			FROM pg_proc p
			WHERE p.pronamespace = 'public'::regnamespace AND (p.proname LIKE 'river\_%' OR p.proname LIKE 'stripe\_sync\_%')`,
			schema), pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list objects in public: %w", err)
		}
		for _, stmt := range statements {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
			moved = append(moved, strings.Fields(stmt)[2])
		}
		if _, err := tx.Exec(ctx, fix); err != nil {
			return fmt.Errorf("re-create functions in %s: %w", schema, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("move stripe-sync from public into %s: %w", schema, err)
	}
	return moved, nil
}

// mustQuery runs a query whose error surfaces through pgx.CollectRows.
func mustQuery(ctx context.Context, tx pgx.Tx, sql string, args ...any) pgx.Rows {
	rows, _ := tx.Query(ctx, sql, args...)
	return rows
}

// upSection returns the rendered "-- +goose Up" part of a migration file.
func upSection(name, schema string) (string, error) {
	b, err := sqlFiles.ReadFile("sql/" + name)
	if err != nil {
		return "", err
	}
	up, _, _ := strings.Cut(string(b), "-- +goose Down")
	return render(up, schema), nil
}

func render(sqlText, schema string) string {
	return strings.ReplaceAll(sqlText, schemaToken, schema)
}

// renderedFS returns the migration files with the schema filled in.
func renderedFS(schema string) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(sqlFiles, "sql", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sqlFiles.ReadFile(path)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(path, "sql/")] = &fstest.MapFile{Data: []byte(render(string(b), schema))}
		return nil
	})
	return out, err
}

// Hash identifies the set of migrations, so a test-database template is
// rebuilt whenever any of them changes.
func Hash() (string, error) {
	h := newHasher()
	err := fs.WalkDir(sqlFiles, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := sqlFiles.ReadFile(path)
		if err != nil {
			return err
		}
		h.add(path, b)
		return nil
	})
	if err != nil {
		return "", err
	}
	h.add("lockdown", []byte(lockdownSQL))
	h.add("host_schema", []byte(hostSchemaSQL))
	return h.sum(), nil
}

// InstallHostSchema creates the LodgeTix tables (if absent) for tests and the
// demo. Production databases already have them.
func InstallHostSchema(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, hostSchemaSQL); err != nil {
		return fmt.Errorf("install host schema fixture: %w", err)
	}
	return nil
}

// InstallSampleData inserts the demo's organisations, events and tickets;
// rows that exist already are left alone.
func InstallSampleData(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, sampleDataSQL); err != nil {
		return fmt.Errorf("install sample data: %w", err)
	}
	return nil
}

func newProvider(db *sql.DB, schema string) (*goose.Provider, error) {
	fsys, err := renderedFS(schema)
	if err != nil {
		return nil, err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithTableName(schema+"."+VersionTable))
	if err != nil {
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	return provider, nil
}

func checkHostTables(ctx context.Context, pool *pgxpool.Pool) error {
	for _, table := range HostTables {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
			return fmt.Errorf("check host table %s: %w", table, err)
		}
		if !exists {
			return &MissingHostTableError{Table: table}
		}
	}
	return nil
}

// IsMissingHostTable reports whether err is a *MissingHostTableError.
func IsMissingHostTable(err error) bool {
	var target *MissingHostTableError
	return errors.As(err, &target)
}
