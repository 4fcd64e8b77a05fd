package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// maxRoundsPerAttempt bounds how often one attempt re-syncs an entity that
// keeps changing under it before handing back to River with a snooze.
const maxRoundsPerAttempt = 3

// MaxSnoozes caps how often a job may snooze: River's snooze consumes no
// attempt, so without a cap an entity changing forever (or a 429 storm)
// would keep a job alive forever. Past the cap a round uses up an attempt.
const MaxSnoozes = 50

// entityRef names the entity a job is about.
type entityRef struct {
	kind outbox.Kind
	id   string
}

// reconcileFunc takes the entity's locks on conn (session-level advisory
// locks, released when the round ends), reads the entity and makes Stripe
// match it. conn is outside any transaction: no row lock is held while
// Stripe is called, so the host's writes never wait on Stripe. A returned
// error is a database failure: the round is abandoned without a log row and
// River retries.
type reconcileFunc func(ctx context.Context, conn *pgx.Conn, logger *slog.Logger) (*outcome, error)

type runner struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time
}

// run drives reconcile rounds for one job until the entity is in step with
// its latest committed change, then completes the job in the same transaction
// that checked for that change.
func run[T river.JobArgs](ctx context.Context, r *runner, job *river.Job[T], ref entityRef, reconcile reconcileFunc) error {
	logger := r.logger.With(
		slog.Int64("job_id", job.ID), slog.String("kind", job.Kind),
		slog.String("entity_id", ref.id), slog.Int("attempt", job.Attempt))

	for round := 1; ; round++ {
		done, result, err := runRound(ctx, r, job, ref, reconcile, logger)
		if err != nil {
			return err
		}
		if done {
			return result
		}
		if round >= maxRoundsPerAttempt {
			if snoozes(job.Metadata) >= MaxSnoozes {
				return fmt.Errorf("%s %s changed during %d consecutive syncs; retrying with backoff", ref.kind, ref.id, MaxSnoozes)
			}
			logger.Info("entity keeps changing; snoozing")
			return river.JobSnooze(0)
		}
		logger.Debug("entity changed while syncing; syncing again")
	}
}

// runRound runs one reconcile round on a connection of its own and commits
// its record. done is false when a change committed during the round, so
// another round must follow; otherwise result is the River result to return.
//
// The round costs four round trips to PostgreSQL: the locks, intent and
// reads in one batch; BEGIN and every write in a second; River's completion;
// COMMIT and the unlock in a fourth.
func runRound[T river.JobArgs](ctx context.Context, r *runner, job *river.Job[T], ref entityRef,
	reconcile reconcileFunc, logger *slog.Logger,
) (done bool, result error, err error) {
	start := r.now()
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return false, nil, fmt.Errorf("acquire connection: %w", err)
	}
	tx := &pipelinedTx{conn: conn.Conn()}
	defer func() {
		if tx.open {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
		if tx.unlocked {
			conn.Release()
		} else {
			releaseLocks(conn)
		}
	}()

	o, err := reconcile(ctx, conn.Conn(), logger)
	if err != nil {
		return false, nil, err
	}
	skipUnreachable(o, ref)
	parkRefused(o, ref)
	logger = logger.With(slog.String("account", o.account))

	finalAttempt := job.Attempt >= job.MaxAttempts
	terminal := o.err == nil || o.permanent() || finalAttempt
	wanted, err := record(ctx, tx, job.JobRow, ref, o, terminal, r.now().Sub(start))
	if err != nil {
		return false, nil, err
	}
	current := wanted <= o.version

	logOutcome(logger, o)
	switch {
	case o.err != nil && !o.permanent():
		// River retries; a retried attempt reads the row afresh, so a change
		// that committed meanwhile is not lost.
		result = retryResult(o.err, snoozes(job.Metadata))
	case !current:
		result = errAgain
	case o.err != nil:
		result = river.JobCancel(o.err)
	default:
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, pgx.Tx(tx), job); err != nil {
			return false, nil, fmt.Errorf("complete job: %w", err)
		}
	}
	if err := tx.commitAndUnlock(ctx); err != nil {
		return false, nil, fmt.Errorf("commit: %w", err)
	}
	if errors.Is(result, errAgain) {
		return false, nil, nil
	}
	return true, result, nil
}

// errAgain marks a round whose entity changed while it ran.
var errAgain = errors.New("entity changed during the round")

// releaseLocks drops the round's advisory locks before the connection goes
// back to the pool. A connection that cannot be unlocked (its context died
// mid-query) is closed instead, which drops them too.
func releaseLocks(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		_ = conn.Conn().Close(ctx)
	}
	conn.Release()
}

// retryResult turns a transient failure into River's result: a rate limit
// waits without using up an attempt.
func retryResult(err error, snoozed int) error {
	if stripeclient.IsClass(err, stripeclient.ClassRateLimited) && snoozed < MaxSnoozes {
		wait := time.Second
		var se *stripeclient.Error
		if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = se.RetryAfter
		}
		return river.JobSnooze(wait)
	}
	return err
}

// record opens the round's transaction and writes its rows in the host's
// lock order (see lockRank: host rows, then event state, then ticket
// state), all in one pipelined batch, and returns the entity's
// wanted_version read under its row lock: if it moved past o.version, a
// change committed while this round ran. A pushed outcome advances
// pushed_version and, if the round wrote to Stripe (or read it), clears
// in_doubt: its answers say what Stripe now holds. A round that sent nothing
// leaves in_doubt as it is, since it may have been set (reconcile --fix)
// after the round read the state. A round that failed with a 5xx moves
// key_generation on, so the next attempt sends new Idempotency-Keys.
func record(ctx context.Context, tx *pipelinedTx, job *rivertype.JobRow, ref entityRef, o *outcome, terminal bool, took time.Duration) (int64, error) {
	batch := &pgx.Batch{}
	batch.Queue("begin")
	tx.open = true
	var wanted int64
	own := stateRank(ref.kind)
	for rank := rankHostRow; rank <= rankMarks; rank++ {
		for _, s := range o.pre {
			if s.rank == rank {
				batch.Queue(s.sql, s.args...)
			}
		}
		if rank == own {
			queueOwnState(batch, ref, o, terminal, &wanted)
		}
	}
	batch.Queue(`
		INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action,
			status, error_message, job_id, attempt, duration_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		string(ref.kind), ref.id, nullIfEmpty(o.objectID), nullIfEmpty(o.account), o.action,
		o.status, nullIfEmpty(o.message), job.ID, job.Attempt, took.Milliseconds())
	if err := tx.conn.SendBatch(ctx, batch).Close(); err != nil {
		return 0, fmt.Errorf("record outcome: %w", err)
	}
	return wanted, nil
}

// queueOwnState queues the upsert of the entity's own state row, which reads
// wanted_version back under the row's lock.
func queueOwnState(batch *pgx.Batch, ref entityRef, o *outcome, terminal bool, wanted *int64) {
	batch.Queue(`
		INSERT INTO stripe_sync_state AS s (entity_type, entity_id, parent_id, connected_account_id,
			stripe_object_id, fingerprint, synced_at, handled_version, accounts, pushed_version)
		VALUES ($1, $2, nullif($3, '')::uuid, $4, $5, $6, now(), CASE WHEN $8 THEN $7::bigint ELSE 0 END,
			coalesce($10::text[], '{}'), CASE WHEN $9 THEN $7::bigint ELSE 0 END)
		ON CONFLICT (entity_type, entity_id) DO UPDATE SET
			parent_id = coalesce(EXCLUDED.parent_id, s.parent_id),
			connected_account_id = CASE WHEN $9 THEN EXCLUDED.connected_account_id ELSE s.connected_account_id END,
			stripe_object_id = CASE WHEN $9 THEN EXCLUDED.stripe_object_id ELSE s.stripe_object_id END,
			fingerprint = CASE WHEN $9 THEN EXCLUDED.fingerprint ELSE s.fingerprint END,
			synced_at = CASE WHEN $9 THEN now() ELSE s.synced_at END,
			handled_version = CASE WHEN $8 THEN greatest(s.handled_version, $7::bigint) ELSE s.handled_version END,
			accounts = coalesce($10::text[], s.accounts),
			in_doubt = CASE WHEN $11 THEN false ELSE s.in_doubt END,
			pushed_version = CASE WHEN $9 THEN greatest(s.pushed_version, $7::bigint) ELSE s.pushed_version END,
			key_generation = s.key_generation + CASE WHEN $12 THEN 1 ELSE 0 END
		RETURNING wanted_version`,
		string(ref.kind), ref.id, o.parentID, nullIfEmpty(o.account), nullIfEmpty(o.objectID),
		nullIfEmpty(o.fingerprint), o.version, terminal, o.pushed, o.accounts,
		o.pushed && o.action != ActionUnchanged, o.err != nil && needsNewKey(o.err),
	).QueryRow(func(row pgx.Row) error { return row.Scan(wanted) })
}

func logOutcome(logger *slog.Logger, o *outcome) {
	attrs := []any{slog.String("action", o.action), slog.String("status", o.status)}
	if o.objectID != "" {
		attrs = append(attrs, slog.String("stripe_object_id", o.objectID))
	}
	switch {
	case o.err != nil && stripeclient.IsClass(o.err, stripeclient.ClassAuth):
		logger.Error("stripe rejected our credentials or the connected account; fix configuration", append(attrs, slog.String("error", o.message))...)
	case o.err != nil:
		logger.Warn("sync failed", append(attrs, slog.String("error", o.message))...)
	case o.status == StatusSkipped:
		logger.Info("sync skipped", append(attrs, slog.String("reason", o.message))...)
	default:
		logger.Info("synced", attrs...)
	}
}

func lockKey(kind outbox.Kind, id string) string { return "stripe_sync:" + string(kind) + ":" + id }

// lockSQL takes an entity's session-level lock; workers hold it for a round
// on a connection of their own. lock (below) takes the same lock for one
// transaction, for callers outside the workers (reconcile); the two exclude
// each other.
const lockSQL = `SELECT pg_advisory_lock(hashtextextended($1, 0))`

// lock takes the entity's advisory lock until tx ends. Whoever needs several
// takes an event's before its tickets'.
func lock(ctx context.Context, tx pgx.Tx, kind outbox.Kind, id string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, lockKey(kind, id)); err != nil {
		return fmt.Errorf("lock %s %s: %w", kind, id, err)
	}
	return nil
}

func snoozes(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	return m.Snoozes
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
