package jobs

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipelinedTx is a pgx.Tx whose BEGIN travels in the same batch as the
// round's writes, and whose COMMIT travels with the unlock of the round's
// advisory locks: two round trips fewer per job than pgx's own Tx, which
// sends BEGIN and COMMIT on their own. It exists so river.JobCompleteTx can
// run inside that transaction; it supports what JobCompleteTx uses (Exec,
// Query, QueryRow) and refuses nested transactions.
type pipelinedTx struct {
	conn *pgx.Conn
	// open is set once BEGIN has been queued, until COMMIT or ROLLBACK.
	open bool
	// unlocked is set once the advisory locks went with the COMMIT.
	unlocked bool
}

var _ pgx.Tx = (*pipelinedTx)(nil)

var errNestedTx = errors.New("jobs: nested transactions are not supported in a sync round")

// commitAndUnlock commits and drops the round's advisory locks in one round
// trip. The locks go after the COMMIT in the same batch, so no other job can
// take them before this round's writes are visible.
func (t *pipelinedTx) commitAndUnlock(ctx context.Context) error {
	batch := &pgx.Batch{}
	batch.Queue("commit")
	batch.Queue("SELECT pg_advisory_unlock_all()")
	err := t.conn.SendBatch(ctx, batch).Close()
	if err == nil {
		t.open, t.unlocked = false, true
	}
	return err
}

func (t *pipelinedTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNestedTx }

func (t *pipelinedTx) Commit(ctx context.Context) error {
	_, err := t.conn.Exec(ctx, "commit")
	if err == nil {
		t.open = false
	}
	return err
}

func (t *pipelinedTx) Rollback(ctx context.Context) error {
	_, err := t.conn.Exec(ctx, "rollback")
	t.open = false
	return err
}

func (t *pipelinedTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.conn.CopyFrom(ctx, table, columns, src)
}

func (t *pipelinedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, b)
}

// LargeObjects is never used in a sync round; the zero value fails on use.
func (t *pipelinedTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *pipelinedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

func (t *pipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.conn.Exec(ctx, sql, args...)
}

func (t *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}

func (t *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.conn.QueryRow(ctx, sql, args...)
}

func (t *pipelinedTx) Conn() *pgx.Conn { return t.conn }
