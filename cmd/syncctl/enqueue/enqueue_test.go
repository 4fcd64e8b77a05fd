package enqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdEnqueue(t *testing.T) {
	t.Parallel()
	const id = "0e000000-0000-4000-8000-000000000001"

	cmdtest.Command[Options]{NewCmd: NewCmdEnqueue}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Event", Args: []string{"event", id}, Want: &Options{Kind: outbox.KindEvent, IDs: []string{id}}},
		{Name: "UpperCaseIDNormalised", Args: []string{"ticket", "0E000000-0000-4000-8000-000000000001"}, Want: &Options{Kind: outbox.KindTicket, IDs: []string{id}}},
		{Name: "JobKindAndJSON", Args: []string{"stripe_sync_org", id, "--json"}, Want: &Options{Kind: outbox.KindOrg, IDs: []string{id}, JSON: true}},
		{Name: "UnknownKind", Args: []string{"venue", id}, WantUsage: `unknown kind "venue"`},
		{Name: "MalformedID", Args: []string{"event", "123"}, WantUsage: `malformed id "123"`},
		{Name: "NoIDs", Args: []string{"event"}, WantCobraErr: "requires at least 2 arg(s)"},
	})
}

func TestEnqueueRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T) (*pgxpool.Pool, cmdtest.Command[Options]) {
		db := cmdtest.NewDB(t)
		db.Exec(t, `
			INSERT INTO organisations (organisation_id, name) VALUES ('0a000000-0000-4000-8000-000000000001', 'Org');
			INSERT INTO events (event_id, organisation_id, title) VALUES
				('0e000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000001', 'v0');`)
		return db.Pool, cmdtest.Command[Options]{NewCmd: NewCmdEnqueue, DatabaseURL: db.URL}
	}

	t.Run("HundredUpdatesThenEnqueueIsDeduplicated", func(t *testing.T) {
		t.Parallel()
		pool, cmd := setup(t)
		for i := 1; i <= 100; i++ {
			_, err := pool.Exec(ctx, `UPDATE events SET title = $1 WHERE event_id = '0e000000-0000-4000-8000-000000000001'`, fmt.Sprintf("v%d", i))
			require.NoError(t, err)
		}
		var jobID int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM river_job`).Scan(&jobID))

		out, _ := cmd.MustRun(t, true, "event", "0e000000-0000-4000-8000-000000000001", "0e000000-0000-4000-8000-000000000002")
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
		_, cmd := setup(t)
		out, _ := cmd.MustRun(t, false, "event", "0e000000-0000-4000-8000-000000000001")
		require.Regexp(t, `^event  0e000000-0000-4000-8000-000000000001  \d+  +deduplicated \(a job for it is already waiting or running\)\n$`, out)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		_, cmd := setup(t)
		out, _ := cmd.MustRun(t, false, "event", "--json", "0e000000-0000-4000-8000-000000000001", "0e000000-0000-4000-8000-000000000003")
		var doc struct {
			Jobs []map[string]any `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Jobs, 2)
		for _, j := range doc.Jobs {
			require.ElementsMatch(t, []string{"kind", "id", "job_id", "deduplicated"}, cmdtest.Keys(j))
		}
		require.Equal(t, true, doc.Jobs[0]["deduplicated"])
		require.Equal(t, false, doc.Jobs[1]["deduplicated"])
	})
}
