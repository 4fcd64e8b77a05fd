// Package testdb gives each test its own migrated PostgreSQL database, cloned
// from a template (pgtestdb), on the server named by TEST_DATABASE_URL. The
// template holds the LodgeTix host-schema fixture plus every migration, so a
// test starts from exactly what `syncctl migrate` installs.
package testdb

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for pgtestdb and goose
	"github.com/peterldowns/pgtestdb"

	"github.com/lodgetix/stripe-sync/migrations"
)

// URL returns the connection string of a fresh database for t, dropped when
// t passes (kept, and its URL logged, when t fails).
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, config(t), migrator{}).URL()
}

// New returns a pool on a fresh database for t, closed when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func config(t testing.TB) pgtestdb.Config {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		t.Fatal("testdb: TEST_DATABASE_URL is not set; run the tests with `make test`, which starts a throwaway PostgreSQL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("testdb: parse TEST_DATABASE_URL: %v", err)
	}
	password, _ := u.User.Password()
	return pgtestdb.Config{
		DriverName:                "pgx",
		Host:                      u.Hostname(),
		Port:                      u.Port(),
		User:                      u.User.Username(),
		Password:                  password,
		Database:                  strings.TrimPrefix(u.Path, "/"),
		Options:                   u.RawQuery,
		ForceTerminateConnections: true,
	}
}

type migrator struct{}

func (migrator) Hash() (string, error) { return migrations.Hash() }

func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	if err := migrations.InstallHostSchema(ctx, db); err != nil {
		return err
	}
	_, err := migrations.Up(ctx, db, nil)
	return err
}

// Empty returns a database/sql handle (driver "pgx") on a fresh database with
// nothing installed, for tests of the migrations themselves.
func Empty(t testing.TB) *sql.DB {
	t.Helper()
	return pgtestdb.New(t, config(t), pgtestdb.NoopMigrator{})
}

// URLOf returns the connection string of database name on the test server,
// as the role pgtestdb gives tests.
func URLOf(t testing.TB, name string) string {
	t.Helper()
	conf := config(t)
	conf.Database = name
	role := pgtestdb.DefaultRole()
	conf.User, conf.Password = role.Username, role.Password
	return conf.URL()
}
