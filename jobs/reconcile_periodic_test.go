package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// The scheduled reconcile finds drift no webhook reported (no endpoint is
// configured here), fixes it through the entity's job, skips accounts known
// unreachable, runs on the bulk lane and records its counts for /metrics.
func TestReconcileWorker_findsAndFixesDrift(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(140)
	insertEvent(t, b, ev, orgID, "Reconciled")
	b.WaitIdle(t, 10*time.Second)
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ('0a000000-0000-4000-8000-0000000000cc', 'Gone', 'acct_1Gone')`)
	b.Exec(t, `INSERT INTO stripe_sync_unreachable_account (account, reason) VALUES ('acct_1Gone', 'test')`)

	renamed := "Renamed behind our back"
	require.NoError(t, b.Emulator.DashboardUpdate(account, jobs.ProductID(ev), emulator.Edit{Name: &renamed}))
	b.Emulator.ResetRequests()

	_, err := b.River.Insert(context.Background(), jobs.ReconcileArgs{}, nil)
	require.NoError(t, err)
	eventually(t, 10*time.Second, "the reconcile ran and the repair was made", func() bool {
		stats, err := jobs.LatestReconcile(context.Background(), b.Pool)
		require.NoError(t, err)
		return stats.Accounts == 1 && product(t, b, account, jobs.ProductID(ev)).Name == "Reconciled"
	})
	b.WaitIdle(t, 10*time.Second)
	stats, err := jobs.LatestReconcile(context.Background(), b.Pool)
	require.NoError(t, err)
	require.Equal(t, 1, stats.DriftFound)
	require.Equal(t, 1, stats.DriftFixed)
	for _, r := range b.Emulator.Requests() {
		require.Equal(t, account, r.Account, "nothing sent to the unreachable account")
	}
	require.Equal(t, 1, b.Emulator.WriteCount())

	var priority int
	require.NoError(t, b.Pool.QueryRow(context.Background(),
		`SELECT priority FROM river_job WHERE kind = 'stripe_sync_reconcile_account'`).Scan(&priority))
	require.Equal(t, jobs.BulkPriority, priority)
}
