package cancel

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdCancel(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name      string
		args      []string
		want      *Options
		wantUsage string
	}{
		{name: "One", args: []string{"42"}, want: &Options{JobIDs: []int64{42}}},
		{name: "ManyJSON", args: []string{"42", "43", "--json"}, want: &Options{JobIDs: []int64{42, 43}, JSON: true}},
		{name: "OneMalformed", args: []string{"42", "forty-three"}, wantUsage: `malformed job id "forty-three"`},
		{name: "Negative", args: []string{"--", "-1"}, wantUsage: `malformed job id "-1"`},
		{name: "None", args: nil, wantUsage: "requires at least 1 arg(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdCancel(cmdutil.NewFactory(io, func(string) string { return "" }), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				if tt.name != "None" { // cobra's own arity error is mapped to 2 by root.Main
					require.Equal(t, 2, cmdutil.ExitCode(err))
				}
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.Equal(t, tt.want, got)
		})
	}
}

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
)

// setup makes job 101 (an event, waiting), 102 (an event, completed) and
// 103 (a ticket, running).
func setup(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	require.NoError(t, err)
	for _, e := range []outbox.Entity{{Kind: outbox.KindEvent, ID: event1}, {Kind: outbox.KindEvent, ID: event2}, {Kind: outbox.KindTicket, ID: ticket}} {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Enqueue(ctx, client, tx, e)
			return err
		}))
	}
	_, err = pool.Exec(ctx, `
		UPDATE river_job SET state = 'completed', attempt = 1, attempted_at = now(), finalized_at = now() WHERE id = 102;
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = 103;`)
	require.NoError(t, err)
	return pool, url
}

func run(t *testing.T, url string, terminal bool, args ...string) (string, string, error) {
	t.Helper()
	io, out, errOut := cmdutil.Test(terminal)
	f := cmdutil.NewFactory(io, func(string) string { return "" })
	f.DatabaseURL = url
	t.Cleanup(f.Close)
	cmd := NewCmdCancel(f, nil)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
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
		pool, url := setup(t)
		out, errOut, err := run(t, url, true, "101", "102", "103")
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
		_, url := setup(t)
		out, _, err := run(t, url, false, "101")
		require.NoError(t, err)
		require.Equal(t, "101  event  0e000000-0000-4000-8000-000000000001  available  cancelled\n", out)
	})

	t.Run("UnknownJobsExitOneAfterCancellingTheRest", func(t *testing.T) {
		t.Parallel()
		pool, url := setup(t)
		out, _, err := run(t, url, false, "998", "101", "999")
		require.EqualError(t, err, "jobs 998, 999 not found")
		require.Equal(t, 1, cmdutil.ExitCode(err))
		require.Equal(t, "101  event  0e000000-0000-4000-8000-000000000001  available  cancelled\n", out)
		s, _ := state(t, pool, 101)
		require.Equal(t, "cancelled", s)

		_, _, err = run(t, url, false, "997")
		require.EqualError(t, err, "job 997 not found")
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		_, url := setup(t)
		out, _, err := run(t, url, false, "--json", "101", "103")
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
