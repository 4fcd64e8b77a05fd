package outbox_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/outbox"
)

func TestJobEntity(t *testing.T) {
	t.Parallel()
	const id = "5e5e5e5e-0000-4000-8000-00000000abcd"

	for _, kind := range outbox.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			args, err := json.Marshal(kind.Args(id))
			require.NoError(t, err)
			e, ok := outbox.JobEntity(kind.JobKind(), args)
			require.True(t, ok)
			require.Equal(t, outbox.Entity{Kind: kind, ID: id}, e)
		})
	}
	t.Run("NotASyncKind", func(t *testing.T) {
		t.Parallel()
		_, ok := outbox.JobEntity("stripe_sync_resync", []byte(`{}`))
		require.False(t, ok)
	})
	t.Run("ArgsOfAnotherKind", func(t *testing.T) {
		t.Parallel()
		_, ok := outbox.JobEntity("stripe_sync_ticket", []byte(`{"event_id": "`+id+`"}`))
		require.False(t, ok)
	})
	t.Run("MalformedArgs", func(t *testing.T) {
		t.Parallel()
		_, ok := outbox.JobEntity("stripe_sync_event", []byte(`[`))
		require.False(t, ok)
	})
}

func TestFailedJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// finish moves a job to a final state at base+minutes, as River leaves a
	// job that failed its last attempt.
	finish := func(t *testing.T, b *testBundle, jobID int64, state rivertype.JobState, minutes int, msg string) {
		t.Helper()
		at := base.Add(time.Duration(minutes) * time.Minute)
		_, err := b.pool.Exec(ctx, `
			UPDATE river_job SET state = $2, finalized_at = $3, attempt = 3, max_attempts = 3,
				errors = ARRAY[jsonb_build_object('at', $3::timestamptz - interval '1 minute', 'attempt', 2, 'error', 'first', 'trace', ''),
				               jsonb_build_object('at', $3::timestamptz, 'attempt', 3, 'error', $4::text, 'trace', '')]
			WHERE id = $1`, jobID, string(state), at, msg)
		require.NoError(t, err)
	}
	enqueueOne := func(t *testing.T, b *testBundle, kind outbox.Kind, id string) int64 {
		t.Helper()
		return enqueue(t, b, outbox.Entity{Kind: kind, ID: id})[0].JobID
	}
	failed := func(t *testing.T, b *testBundle, filter outbox.FailedFilter) []outbox.FailedJob {
		t.Helper()
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		jobs, err := outbox.FailedJobs(ctx, tx, filter)
		require.NoError(t, err)
		return jobs
	}
	ids := func(jobs []outbox.FailedJob) []int64 {
		out := make([]int64, len(jobs))
		for i, j := range jobs {
			out[i] = j.JobID
		}
		return out
	}

	t.Run("DiscardedJobWithItsLastError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		job := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		finish(t, b, job, rivertype.JobStateDiscarded, 5, "stripe create_product: 500: boom")
		enqueueOne(t, b, outbox.KindEvent, eventID(2)) // still waiting: not failed

		jobs := failed(t, b, outbox.FailedFilter{})
		require.Len(t, jobs, 1)
		require.Equal(t, outbox.FailedJob{
			JobID: job, Entity: outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)},
			State: rivertype.JobStateDiscarded, Attempt: 3, MaxAttempts: 3,
			FinalizedAt: base.Add(5 * time.Minute), LastError: "stripe create_product: 500: boom",
		}, normalise(jobs[0]))
	})

	t.Run("CancelledOnlyWhenIncluded", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		discarded := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		finish(t, b, discarded, rivertype.JobStateDiscarded, 1, "x")
		cancelled := enqueueOne(t, b, outbox.KindTicket, eventID(2))
		finish(t, b, cancelled, rivertype.JobStateCancelled, 2, "stripe create_price: 400: bad")

		require.Equal(t, []int64{discarded}, ids(failed(t, b, outbox.FailedFilter{})))
		require.Equal(t, []int64{cancelled, discarded}, ids(failed(t, b, outbox.FailedFilter{IncludeCancelled: true})),
			"newest failure first")
	})

	t.Run("OnlyTheLatestFailurePerEntity", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		older := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		finish(t, b, older, rivertype.JobStateDiscarded, 1, "older")
		newer := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		require.NotEqual(t, older, newer)
		finish(t, b, newer, rivertype.JobStateDiscarded, 2, "newer")

		jobs := failed(t, b, outbox.FailedFilter{})
		require.Equal(t, []int64{newer}, ids(jobs))
		require.Equal(t, "newer", jobs[0].LastError)
	})

	t.Run("SkipsEntitiesAnotherJobCovers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// A job waiting for the entity will sync its current row anyway.
		waitingCovered := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		finish(t, b, waitingCovered, rivertype.JobStateDiscarded, 1, "x")
		enqueueOne(t, b, outbox.KindEvent, eventID(1))

		// A job that completed after the failure already synced it.
		completedCovered := enqueueOne(t, b, outbox.KindEvent, eventID(2))
		finish(t, b, completedCovered, rivertype.JobStateDiscarded, 2, "x")
		finish(t, b, enqueueOne(t, b, outbox.KindEvent, eventID(2)), rivertype.JobStateCompleted, 3, "")

		// A job that completed before the failure did not.
		completedBefore := enqueueOne(t, b, outbox.KindEvent, eventID(3))
		finish(t, b, completedBefore, rivertype.JobStateCompleted, 1, "")
		notCovered := enqueueOne(t, b, outbox.KindEvent, eventID(3))
		finish(t, b, notCovered, rivertype.JobStateDiscarded, 4, "x")

		// The same id under another kind is another entity.
		otherKind := enqueueOne(t, b, outbox.KindTicket, eventID(1))
		finish(t, b, otherKind, rivertype.JobStateDiscarded, 5, "x")

		require.Equal(t, []int64{otherKind, notCovered}, ids(failed(t, b, outbox.FailedFilter{})))
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		event1 := enqueueOne(t, b, outbox.KindEvent, eventID(1))
		finish(t, b, event1, rivertype.JobStateDiscarded, 1, "x")
		event2 := enqueueOne(t, b, outbox.KindEvent, eventID(2))
		finish(t, b, event2, rivertype.JobStateDiscarded, 10, "x")
		ticket := enqueueOne(t, b, outbox.KindTicket, eventID(1))
		finish(t, b, ticket, rivertype.JobStateDiscarded, 20, "x")
		org := enqueueOne(t, b, outbox.KindOrg, eventID(3))
		finish(t, b, org, rivertype.JobStateDiscarded, 30, "x")

		for _, tt := range []struct {
			name   string
			filter outbox.FailedFilter
			want   []int64
		}{
			{name: "All", filter: outbox.FailedFilter{}, want: []int64{org, ticket, event2, event1}},
			{name: "Kind", filter: outbox.FailedFilter{Kind: outbox.KindEvent}, want: []int64{event2, event1}},
			{name: "Since", filter: outbox.FailedFilter{Since: base.Add(10 * time.Minute)}, want: []int64{org, ticket, event2}},
			{name: "EntityAcrossKinds", filter: outbox.FailedFilter{EntityID: eventID(1)}, want: []int64{ticket, event1}},
			{name: "EntityAndKind", filter: outbox.FailedFilter{EntityID: eventID(1), Kind: outbox.KindTicket}, want: []int64{ticket}},
			{name: "OrgEntity", filter: outbox.FailedFilter{EntityID: eventID(3)}, want: []int64{org}},
			{name: "Limit", filter: outbox.FailedFilter{Limit: 2}, want: []int64{org, ticket}},
			{name: "NothingMatches", filter: outbox.FailedFilter{Since: base.Add(time.Hour)}, want: []int64{}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				require.Equal(t, tt.want, ids(failed(t, b, tt.filter)))
			})
		}
	})
}

func normalise(j outbox.FailedJob) outbox.FailedJob {
	j.FinalizedAt = j.FinalizedAt.UTC()
	return j
}
