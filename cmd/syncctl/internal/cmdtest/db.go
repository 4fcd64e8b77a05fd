package cmdtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

// DB is a fresh migrated database of one test (testdb.URL), for seeding
// what a command reads.
type DB struct {
	// URL is the database's connection string, for Command.DatabaseURL.
	URL string
	// Pool is open on the database until the test ends.
	Pool *pgxpool.Pool
	// River only inserts jobs; it works none.
	River *river.Client[pgx.Tx]
}

// NewDB returns a fresh database for t, dropped when t passes.
func NewDB(t testing.TB) *DB {
	t.Helper()
	db := &DB{URL: testdb.URL(t)}
	db.Pool = testdb.Pool(t, db.URL)
	var err error
	db.River, err = river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: testdb.Schema})
	require.NoError(t, err)
	return db
}

// Exec runs sql, failing t on an error.
func (db *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// Enqueue inserts a sync job for each entity in turn, each in a transaction
// of its own, the way the host application's writes do.
func (db *DB) Enqueue(t testing.TB, entities ...outbox.Entity) {
	t.Helper()
	ctx := context.Background()
	for _, e := range entities {
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			_, err := outbox.Enqueue(ctx, db.River, tx, e)
			return err
		}))
	}
}
