package cancel

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdCancel(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdCancel}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "One", Args: []string{"42"}, Want: &Options{JobIDs: []int64{42}}},
		{Name: "ManyJSON", Args: []string{"42", "43", "--json"}, Want: &Options{JobIDs: []int64{42, 43}, JSON: true}},
		{Name: "OneMalformed", Args: []string{"42", "forty-three"}, WantUsage: `malformed job id "forty-three"`},
		{Name: "Negative", Args: []string{"--", "-1"}, WantUsage: `malformed job id "-1"`},
		{Name: "None", Args: nil, WantCobraErr: "requires at least 1 arg(s)"},
	})
}

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
)

// setup makes job 101 (an event, waiting), 102 (an event, completed) and
// 103 (a ticket, running).
func setup(t *testing.T) (*pgxpool.Pool, cmdtest.Command[Options]) {
	t.Helper()
	db := cmdtest.NewDB(t)
	db.Exec(t, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	db.Enqueue(t, outbox.Entity{Kind: outbox.KindEvent, ID: event1}, outbox.Entity{Kind: outbox.KindEvent, ID: event2}, outbox.Entity{Kind: outbox.KindTicket, ID: ticket})
	db.Exec(t, `
		UPDATE river_job SET state = 'completed', attempt = 1, attempted_at = now(), finalized_at = now() WHERE id = 102;
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = 103;`)
	return db.Pool, cmdtest.Command[Options]{NewCmd: NewCmdCancel, DatabaseURL: db.URL}
}

func state(t *testing.T, pool *pgxpool.Pool, id int64) (string, bool) {
	t.Helper()
	var s string
	var cancelRequested bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT state, metadata ? 'cancel_attempted_at' FROM river_job WHERE id = $1`, id).Scan(&s, &cancelRequested))
	return s, cancelRequested
}

func TestCancelRun(t *testing.T) {
	t.Parallel()

	t.Run("WaitingFinishedAndRunning", func(t *testing.T) {
		t.Parallel()
		pool, cmd := setup(t)
		out, errOut, err := cmd.Run(t, true, "101", "102", "103")
		require.NoError(t, err)
		require.Empty(t, errOut)
		require.Equal(t, ""+
			"ID   KIND    ENTITY                                WAS        STATE\n"+
			"101  event   0e000000-0000-4000-8000-000000000001  available  cancelled\n"+
			"102  event   0e000000-0000-4000-8000-000000000002  completed  completed (already finished; unchanged)\n"+
			"103  ticket  07000000-0000-4000-8000-000000000001  running    running (cancel requested; its worker stops it)\n", out)

		s, _ := state(t, pool, 101)
		require.Equal(t, "cancelled", s)
		s, _ = state(t, pool, 102)
		require.Equal(t, "completed", s)
		s, requested := state(t, pool, 103)
		require.Equal(t, "running", s)
		require.True(t, requested, "River marks a running job for its worker to cancel")
	})

	t.Run("PlainHasNoHeader", func(t *testing.T) {
		t.Parallel()
		_, cmd := setup(t)
		out, _, err := cmd.Run(t, false, "101")
		require.NoError(t, err)
		require.Equal(t, "101  event  0e000000-0000-4000-8000-000000000001  available  cancelled\n", out)
	})

	t.Run("UnknownJobsExitOneAfterCancellingTheRest", func(t *testing.T) {
		t.Parallel()
		pool, cmd := setup(t)
		out, _, err := cmd.Run(t, false, "998", "101", "999")
		require.EqualError(t, err, "jobs 998, 999 not found")
		require.Equal(t, 1, cmdutil.ExitCode(err))
		require.Equal(t, "101  event  0e000000-0000-4000-8000-000000000001  available  cancelled\n", out)
		s, _ := state(t, pool, 101)
		require.Equal(t, "cancelled", s)

		_, _, err = cmd.Run(t, false, "997")
		require.EqualError(t, err, "job 997 not found")
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		_, cmd := setup(t)
		out, _, err := cmd.Run(t, false, "--json", "101", "103")
		require.NoError(t, err)
		var doc struct {
			Jobs []map[string]any `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, []map[string]any{
			{"id": 101.0, "kind": "event", "entity_id": event1, "previous_state": "available", "state": "cancelled"},
			{"id": 103.0, "kind": "ticket", "entity_id": ticket, "previous_state": "running", "state": "running"},
		}, doc.Jobs)
	})
}
