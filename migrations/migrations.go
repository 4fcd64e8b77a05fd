// Package migrations installs stripe-sync into a LodgeTix database: River's
// own tables (through rivermigrate), then the project's embedded SQL (through
// goose): the Stripe id columns on the host tables, the sync tables and view,
// the enqueue function and the triggers. It also carries the host-schema
// fixture that tests and the demo run against; production never installs it.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

//go:embed fixture/host_schema.sql
var hostSchemaSQL string

//go:embed fixture/sample_data.sql
var sampleDataSQL string

// VersionTable is goose's bookkeeping table for the project's own migrations,
// named so that it cannot collide with a host application's goose table.
const VersionTable = "stripe_sync_migrations"

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

// Result says what Up applied; both slices are empty on a second run.
type Result struct {
	River   []int
	Project []string
}

// Up applies River's migrations and the project's, in that order. It is
// idempotent. db must be a pgx database/sql handle (driver name "pgx").
// Returns a *MissingHostTableError, before changing anything, when a host
// table is absent.
func Up(ctx context.Context, db *sql.DB, logger *slog.Logger) (*Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := checkHostTables(ctx, db); err != nil {
		return nil, err
	}

	riverMigrator, err := rivermigrate.New(riverdatabasesql.New(db), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	riverRes, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("river migrations: %w", err)
	}

	provider, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	projectRes, err := provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("stripe-sync migrations: %w", err)
	}

	res := &Result{}
	for _, v := range riverRes.Versions {
		res.River = append(res.River, v.Version)
	}
	for _, r := range projectRes {
		res.Project = append(res.Project, r.Source.Path)
	}
	return res, nil
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

func newProvider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(sqlFiles, "sql")
	if err != nil {
		return nil, err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithTableName(VersionTable))
	if err != nil {
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	return provider, nil
}

func checkHostTables(ctx context.Context, db *sql.DB) error {
	for _, table := range HostTables {
		var exists bool
		if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
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
