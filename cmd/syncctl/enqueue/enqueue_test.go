package enqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdEnqueue(t *testing.T) {
	t.Parallel()
	const id = "0e000000-0000-4000-8000-000000000001"

	for _, tt := range []struct {
		name      string
		args      []string
		want      *Options
		wantUsage string
	}{
		{name: "Event", args: []string{"event", id}, want: &Options{Kind: outbox.KindEvent, IDs: []string{id}}},
		{name: "UpperCaseIDNormalised", args: []string{"ticket", "0E000000-0000-4000-8000-000000000001"}, want: &Options{Kind: outbox.KindTicket, IDs: []string{id}}},
		{name: "JobKindAndJSON", args: []string{"stripe_sync_org", id, "--json"}, want: &Options{Kind: outbox.KindOrg, IDs: []string{id}, JSON: true}},
		{name: "UnknownKind", args: []string{"venue", id}, wantUsage: `unknown kind "venue"`},
		{name: "MalformedID", args: []string{"event", "123"}, wantUsage: `malformed id "123"`},
		{name: "NoIDs", args: []string{"event"}, wantUsage: "requires at least 2 arg(s)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdEnqueue(cmdutil.NewFactory(io, func(string) string { return "" }), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				if tt.name != "NoIDs" { // cobra's own arity error is mapped to 2 by root.Main
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

func TestEnqueueRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T) (*pgxpool.Pool, string) {
		url := testdb.URL(t)
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		_, err = pool.Exec(ctx, `
			INSERT INTO organisations (organisation_id, name) VALUES ('0a000000-0000-4000-8000-000000000001', 'Org');
			INSERT INTO events (event_id, organisation_id, title) VALUES
				('0e000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'v0');`)
		require.NoError(t, err)
		return pool, url
	}
	run := func(t *testing.T, url string, terminal bool, args ...string) (string, string) {
		io, out, errOut := cmdutil.Test(terminal)
		f := cmdutil.NewFactory(io, func(string) string { return "" })
		f.DatabaseURL = url
		t.Cleanup(f.Close)
		cmd := NewCmdEnqueue(f, nil)
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute())
		return out.String(), errOut.String()
	}

	t.Run("HundredUpdatesThenEnqueueIsDeduplicated", func(t *testing.T) {
		t.Parallel()
		pool, url := setup(t)
		for i := 1; i <= 100; i++ {
			_, err := pool.Exec(ctx, `UPDATE events SET title = $1 WHERE event_id = '0e000000-0000-4000-8000-000000000001'`, fmt.Sprintf("v%d", i))
			require.NoError(t, err)
		}
		var jobID int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM river_job`).Scan(&jobID))

		out, _ := run(t, url, true, "event", "0e000000-0000-4000-8000-000000000001", "0e000000-0000-4000-8000-000000000002")
		var second int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT max(id) FROM river_job`).Scan(&second))
		w := max(len("JOB"), len(fmt.Sprint(second)))
		require.Equal(t, fmt.Sprintf(""+
			"KIND   ID                                    %-*s  RESULT\n"+
			"event  0e000000-0000-4000-8000-000000000001  %-*d  deduplicated (a job for it is already waiting or running)\n"+
			"event  0e000000-0000-4000-8000-000000000002  %-*d  enqueued\n", w, "JOB", w, jobID, w, second), out)

		var count int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&count))
		require.Equal(t, 2, count)
	})

	t.Run("PlainOutputHasNoHeader", func(t *testing.T) {
		t.Parallel()
		_, url := setup(t)
		out, _ := run(t, url, false, "event", "0e000000-0000-4000-8000-000000000001")
		require.Regexp(t, `^event  0e000000-0000-4000-8000-000000000001  \d+  +deduplicated \(a job for it is already waiting or running\)\n$`, out)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		_, url := setup(t)
		out, _ := run(t, url, false, "event", "--json", "0e000000-0000-4000-8000-000000000001", "0e000000-0000-4000-8000-000000000003")
		var doc struct {
			Jobs []map[string]any `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Jobs, 2)
		for _, j := range doc.Jobs {
			require.ElementsMatch(t, []string{"kind", "id", "job_id", "deduplicated"}, keys(j))
		}
		require.Equal(t, true, doc.Jobs[0]["deduplicated"])
		require.Equal(t, false, doc.Jobs[1]["deduplicated"])
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
