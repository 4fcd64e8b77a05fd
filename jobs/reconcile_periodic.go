package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// BulkPriority is the River priority of the scheduled reconcile's jobs: the
// bulk lane (outbox.PriorityBulk), so a change made while every account is
// being compared still reaches Stripe in seconds.
const BulkPriority = outbox.PriorityBulk

// ReconcileArgs is the periodic job (Options.ReconcileEvery) that fans the
// scheduled reconcile out into one ReconcileAccountArgs job per connected
// account.
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "stripe_sync_reconcile" }

// InsertOpts implements river.JobArgsWithInsertOpts: one waits at a time.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: outbox.Queue, MaxAttempts: 3, Priority: BulkPriority,
		UniqueOpts: river.UniqueOpts{ByState: outbox.UniqueStates}}
}

// ReconcileAccountArgs compares one connected account with the database and
// fixes what differs, as `syncctl reconcile --fix` does.
type ReconcileAccountArgs struct {
	Account string `json:"account"`
}

// Kind implements river.JobArgs.
func (ReconcileAccountArgs) Kind() string { return "stripe_sync_reconcile_account" }

// InsertOpts implements river.JobArgsWithInsertOpts: one per account waits
// at a time, on the bulk lane.
func (ReconcileAccountArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: outbox.Queue, MaxAttempts: 5, Priority: BulkPriority,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: outbox.UniqueStates}}
}

// ReconcileWorker enqueues a ReconcileAccountArgs job for every connected
// account an organisation uses, except those marked unreachable. One account
// per job keeps each within the job timeout, and lets River retry an account
// on its own.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	deps *Deps
}

// Work enqueues the accounts' jobs and completes, in one transaction.
func (w *ReconcileWorker) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT DISTINCT o.stripe_onbehalfof FROM organisations o
			WHERE coalesce(o.stripe_onbehalfof, '') <> ''
			  AND NOT EXISTS (SELECT 1 FROM stripe_sync_unreachable_account u WHERE u.account = o.stripe_onbehalfof)
			ORDER BY 1`)
		if err != nil {
			return fmt.Errorf("list connected accounts: %w", err)
		}
		accounts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list connected accounts: %w", err)
		}
		params := make([]river.InsertManyParams, len(accounts))
		for i, a := range accounts {
			params[i] = river.InsertManyParams{Args: ReconcileAccountArgs{Account: a}}
		}
		if len(params) > 0 {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue account reconciles: %w", err)
			}
		}
		w.deps.Logger.Info("scheduled reconcile started", slog.Int("accounts", len(accounts)))
		return nil
	})
}

// ReconcileAccountWorker runs Reconciler on one account through the
// workers' Stripe client (so the shared rate limit paces its listing) and
// fixes the findings with Reconciler.Fix: drifted and missing objects are
// their entity's job to repair, extras are archived. It records the counts
// in stripe_sync_reconcile_run for /metrics.
type ReconcileAccountWorker struct {
	river.WorkerDefaults[ReconcileAccountArgs]
	deps *Deps
}

// Work reconciles one account. A listing that fails is retried by River; an
// account that refuses the platform is recorded and not retried.
func (w *ReconcileAccountWorker) Work(ctx context.Context, job *river.Job[ReconcileAccountArgs]) error {
	account := job.Args.Account
	r := &Reconciler{Pool: w.deps.Pool, Stripe: w.deps.Stripe, Currency: w.deps.Currency}
	_, findings, err := r.reconcileAccount(ctx, account)
	if err != nil {
		var ue *AccountUnreachableError
		if errors.As(err, &ue) {
			_, _ = w.deps.Pool.Exec(ctx, markUnreachableSQL, ue.Account, ue.Reason)
			return w.recordRun(ctx, account, 0, 0, err.Error())
		}
		return fmt.Errorf("reconcile %s: %w", account, err)
	}
	found := 0
	for _, f := range findings {
		if f.Problem != ProblemInvalid {
			found++
		}
	}
	res, err := r.Fix(ctx, river.ClientFromContext[pgx.Tx](ctx), findings)
	if err != nil {
		return fmt.Errorf("fix %s: %w", account, err)
	}
	fixed := res.Enqueued + res.Deduplicated + res.Archived
	if found > 0 {
		w.deps.Logger.Info("scheduled reconcile found drift", slog.String("account", account),
			slog.Int("found", found), slog.Int("fixed", fixed), slog.Int("archived", res.Archived))
	}
	return w.recordRun(ctx, account, found, fixed, "")
}

func (w *ReconcileAccountWorker) recordRun(ctx context.Context, account string, found, fixed int, errText string) error {
	if _, err := w.deps.Pool.Exec(ctx, `
		INSERT INTO stripe_sync_reconcile_run (account, drift_found, drift_fixed, error) VALUES ($1, $2, $3, nullif($4, ''))`,
		account, found, fixed, errText); err != nil {
		return fmt.Errorf("record reconcile of %s: %w", account, err)
	}
	return nil
}

// ReconcileStats is the latest scheduled reconcile of every account, summed.
type ReconcileStats struct {
	Accounts   int
	DriftFound int
	DriftFixed int
	// LastRun is the latest account's finish; zero when none ran.
	LastRun time.Time
}

// LatestReconcile reads ReconcileStats. q is a pool or a transaction.
func LatestReconcile(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (ReconcileStats, error) {
	var s ReconcileStats
	var last *time.Time
	err := q.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(drift_found), 0), coalesce(sum(drift_fixed), 0), max(finished_at)
		FROM (SELECT DISTINCT ON (account) * FROM stripe_sync_reconcile_run ORDER BY account, finished_at DESC) r`).
		Scan(&s.Accounts, &s.DriftFound, &s.DriftFixed, &last)
	if err != nil {
		return s, fmt.Errorf("read reconcile runs: %w", err)
	}
	if last != nil {
		s.LastRun = *last
	}
	return s, nil
}
