// Package testdb gives each test its own migrated PostgreSQL database, cloned
// from a template (pgtestdb), on the server named by TEST_DATABASE_URL. The
// template is shaped like a Supabase project's database (see Supabase) before
// LodgeTix's tables and every migration are installed, so a test starts
// from exactly what `syncctl migrate` leaves on the platform's real ground.
package testdb

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for pgtestdb and goose
	"github.com/peterldowns/pgtestdb"

	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/migrations"
)

// WorkerRole is the least-privilege role test workers connect as; every
// template grants it what `syncctl migrate --worker-role` grants.
const WorkerRole = "stripe_sync_worker"

// Schema is the sync schema of every test database.
const Schema = migrations.DefaultSchema

//go:embed supabase_roles.sql
var supabaseRolesSQL string

//go:embed supabase_database.sql
var supabaseDatabaseSQL string

//go:embed supabase_policies.sql
var supabasePoliciesSQL string

// URL returns the connection string of a fresh database for t, as the role
// that owns everything in it, dropped when t passes (kept, and its URL
// logged, when t fails).
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, config(t), migrator{}).URL()
}

// WorkerURL returns rawURL with the user replaced by WorkerRole (the test
// server trusts local connections, so no password is needed).
func WorkerURL(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testdb: parse URL: %v", err)
	}
	u.User = url.User(WorkerRole)
	return u.String()
}

// ThroughPgBouncer returns rawURL with its host and port replaced by those of
// the PgBouncer that .ci/with-pg.sh started (WITH_PGBOUNCER=1, as `make test`
// does) in mode "session" or "transaction". It fails t when there is none: a
// pooler test must not pass by skipping.
func ThroughPgBouncer(t testing.TB, rawURL, mode string) string {
	t.Helper()
	env := map[string]string{"session": "TEST_PGBOUNCER_SESSION_PORT", "transaction": "TEST_PGBOUNCER_TRANSACTION_PORT"}[mode]
	if env == "" {
		t.Fatalf("testdb: no PgBouncer mode %q", mode)
	}
	port := os.Getenv(env)
	if port == "" {
		t.Fatalf("testdb: %s is not set: run the tests with `make test`, which starts PgBouncer in both modes", env)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testdb: parse URL: %v", err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", port)
	return u.String()
}

// New returns a pool on a fresh database for t, closed when t ends. Its
// connections find the sync schema the way the product's do (dbconn).
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, URL(t))
}

// Pool opens a pool on rawURL with the product's connection settings,
// closed when t ends.
func Pool(t testing.TB, rawURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), PoolConfig(t, rawURL))
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// PoolConfig is Pool's configuration, for tests that tune it further.
func PoolConfig(t testing.TB, rawURL string) *pgxpool.Config {
	t.Helper()
	cfg, err := dbconn.Config(rawURL, dbconn.Options{ApplicationName: "stripe-sync test", MaxConns: 20})
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return cfg
}

func config(t testing.TB) pgtestdb.Config {
	t.Helper()
	u := adminURL(t)
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

func adminURL(t testing.TB) *url.URL {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		t.Fatal("testdb: TEST_DATABASE_URL is not set; run the tests with `make test`, which starts a throwaway PostgreSQL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("testdb: parse TEST_DATABASE_URL: %v", err)
	}
	return u
}

type migrator struct{}

func (migrator) Hash() (string, error) {
	h, err := migrations.Hash()
	return "supabase-" + h[:16] + "-" + hashOf(supabaseRolesSQL+supabaseDatabaseSQL+supabasePoliciesSQL), err
}

func (migrator) Migrate(ctx context.Context, db *sql.DB, conf pgtestdb.Config) error {
	if err := CreateSupabaseRoles(ctx, os.Getenv("TEST_DATABASE_URL")); err != nil {
		return err
	}
	if err := ShapeLikeSupabase(ctx, db); err != nil {
		return err
	}
	if err := migrations.InstallHostSchema(ctx, db); err != nil {
		return err
	}
	if err := SecureHostTables(ctx, db); err != nil {
		return err
	}
	_, err := migrations.Up(ctx, conf.URL(), migrations.Options{WorkerRole: WorkerRole})
	return err
}

// CreateSupabaseRoles creates (once per server) Supabase's API roles anon,
// authenticated, service_role and authenticator, and WorkerRole, through
// the superuser connection adminURL.
func CreateSupabaseRoles(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("testdb: connect as admin: %w", err)
	}
	defer conn.Close(ctx)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, supabaseRolesSQL); err != nil {
			return fmt.Errorf("testdb: create Supabase roles: %w", err)
		}
		return nil
	})
}

// ShapeLikeSupabase gives db what a Supabase project has before LodgeTix's
// tables: the auth schema and the historical default privileges that grant
// every new table, function and sequence in public to anon, authenticated
// and service_role. Run CreateSupabaseRoles first.
func ShapeLikeSupabase(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, supabaseDatabaseSQL); err != nil {
		return fmt.Errorf("testdb: shape database like Supabase: %w", err)
	}
	return nil
}

// SecureHostTables turns on row security on the host tables with the
// policies a LodgeTix project has (members manage their organisation's rows).
func SecureHostTables(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, supabasePoliciesSQL); err != nil {
		return fmt.Errorf("testdb: host row security: %w", err)
	}
	return nil
}

// Empty returns a database/sql handle (driver "pgx") on a fresh database with
// nothing installed, for tests of the migrations themselves.
func Empty(t testing.TB) *sql.DB {
	t.Helper()
	db, _ := EmptyURL(t)
	return db
}

// EmptyURL is Empty's database's connection string, for migrations.Up.
func EmptyURL(t testing.TB) (*sql.DB, string) {
	t.Helper()
	conf := pgtestdb.Custom(t, config(t), pgtestdb.NoopMigrator{})
	db, err := sql.Open("pgx", conf.URL())
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, conf.URL()
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
