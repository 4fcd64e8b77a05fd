package dbconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrTransactionPooler is returned by CheckSessionPinned when the connection
// goes through a transaction-mode pooler.
var ErrTransactionPooler = errors.New("DATABASE_URL reaches PostgreSQL through a transaction-mode pooler " +
	"(PgBouncer pool_mode = transaction, or Supabase's Supavisor on port 6543): the worker's session " +
	"advisory locks and River's LISTEN would silently stop working there; connect directly " +
	"(Supabase: db.<project>.supabase.co:5432) or through a session-mode pooler (Supavisor session mode, port 5432)")

// CheckSessionPinned reports ErrTransactionPooler when consecutive
// statements on one client connection may run in different server sessions,
// which is what a transaction-mode pooler does and what breaks everything
// that lives in a session: advisory locks, LISTEN, SET.
//
// It watches the server's backend pid. Connection A reads its pid outside a
// transaction; connection B then opens a transaction and reads its pid; A
// reads again. Behind a direct connection or a session-mode pooler, A keeps
// one backend for its life and B can never be given it. Behind a
// transaction-mode pooler, A's backend goes back to the pool after each
// statement: PgBouncer hands out the most recently released server first, so
// B's transaction gets A's backend, and A's next statement runs elsewhere.
// Either sign is enough. pool must be able to open two connections.
func CheckSessionPinned(ctx context.Context, pool *pgxpool.Pool) error {
	a, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer a.Release()
	b, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer b.Release()

	var pidA, pidB, pidAAgain int32
	if err := a.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pidA); err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pidB); err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	if err := a.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pidAAgain); err != nil {
		return fmt.Errorf("check session: %w", err)
	}
	if pidB == pidA || pidAAgain != pidA {
		return ErrTransactionPooler
	}
	return nil
}
