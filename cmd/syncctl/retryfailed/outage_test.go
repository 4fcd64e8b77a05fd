package retryfailed

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// TestRetryFailed_afterOutage drives a job to discarded with the emulator
// failing every request, then brings it back with retry-failed once the
// emulator is healthy; a dry run in between changes nothing.
func TestRetryFailed_afterOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		orgID   = "0a000000-0000-4000-8000-0000000000aa"
		eventID = "0e000000-0000-4000-8000-0000000000e1"
		account = "acct_1OutageOrg"
	)
	b := synctesting.Start(t, synctesting.Options{NoWorker: true})
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, orgID, account)
	b.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Installation', true)`, eventID, orgID)
	var jobID int64
	require.NoError(t, b.Pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'stripe_sync_event'`).Scan(&jobID))
	// One attempt, so the outage exhausts it without waiting out River's
	// backoff between 25.
	b.Exec(t, `UPDATE river_job SET max_attempts = 1 WHERE id = $1`, jobID)
	b.Emulator.AddFault(emulator.Fault{Kind: emulator.FaultError500})
	b.StartWorker(t)

	type jobRow struct {
		State       string
		Attempt     int
		MaxAttempts int
		Errors      int
		FinalizedAt *time.Time
		ScheduledAt time.Time
	}
	row := func() jobRow {
		var r jobRow
		require.NoError(t, b.Pool.QueryRow(ctx, `
			SELECT state, attempt, max_attempts, coalesce(cardinality(errors), 0), finalized_at, scheduled_at
			FROM river_job WHERE id = $1`, jobID).Scan(&r.State, &r.Attempt, &r.MaxAttempts, &r.Errors, &r.FinalizedAt, &r.ScheduledAt))
		return r
	}
	waitFor := func(state string) jobRow {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := row()
			if r.State == state {
				return r
			}
			require.True(t, time.Now().Before(deadline), "job %d still %s, want %s", jobID, r.State, state)
			time.Sleep(20 * time.Millisecond)
		}
	}
	cmd := cmdtest.Command[Options]{NewCmd: NewCmdRetryFailed, DatabaseURL: b.Pool.Config().ConnString()}

	discarded := waitFor("discarded")
	require.Equal(t, 1, discarded.Errors)
	require.Positive(t, b.Emulator.FaultsInjected()[emulator.FaultError500], "the outage hit Stripe requests")
	require.Empty(t, b.Emulator.Products(account))

	// A dry run lists the job and leaves it exactly as it was.
	out, errOut := cmd.MustRun(t, false, "--dry-run")
	finalized := discarded.FinalizedAt.UTC().Format(time.RFC3339)
	require.Regexp(t, fmt.Sprintf(`^%d  event  %s  discarded  1/1  %s  would retry  stripe \S+: 500: .+\n$`, jobID, eventID, finalized), out)
	require.Equal(t, "dry run: would retry 1 job; nothing changed\n", errOut)
	require.Equal(t, discarded, row())

	// Stripe recovers; the retry brings the job back and it completes.
	b.Emulator.ClearFaults()
	out, errOut = cmd.MustRun(t, false)
	require.Regexp(t, fmt.Sprintf(`^%d  event  %s  discarded  1/1  %s  retried  stripe \S+: 500: .+\n$`, jobID, eventID, finalized), out)
	require.Equal(t, "retried 1 job\n", errOut)
	completed := waitFor("completed")
	require.Equal(t, 2, completed.Attempt)
	require.Equal(t, 2, completed.MaxAttempts, "River gives a job out of attempts one more")

	products := b.Emulator.Products(account)
	require.Len(t, products, 1)
	require.Equal(t, jobs.ProductID(eventID), products[0].ID)
	require.Equal(t, "Installation", products[0].Name)
	var statuses []string
	rows, err := b.Pool.Query(ctx, `SELECT attempt || ' ' || status FROM stripe_sync_log WHERE job_id = $1 ORDER BY created_at`, jobID)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		statuses = append(statuses, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"1 failed", "2 success"}, statuses)

	// Nothing is left to retry.
	out, errOut = cmd.MustRun(t, false)
	require.Empty(t, out)
	require.Equal(t, "retried 0 jobs\n", errOut)
}
