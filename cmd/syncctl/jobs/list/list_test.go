package list

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdList(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdList}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{Limit: 50}},
		{Name: "StatesKindLimitJSON", Args: []string{"--state", "retryable,Discarded", "--state", "running", "--kind", "stripe_sync_ticket", "--limit", "7", "--json"},
			Want: &Options{States: []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateDiscarded, rivertype.JobStateRunning}, Kind: outbox.KindTicket, Limit: 7, JSON: true}},
		{Name: "UnknownState", Args: []string{"--state", "failed"}, WantUsage: `unknown state "failed" (want available, cancelled, completed, discarded, pending, retryable, running, scheduled)`},
		{Name: "UnknownKind", Args: []string{"--kind", "venue"}, WantUsage: `unknown kind "venue"`},
		{Name: "ZeroLimit", Args: []string{"--limit", "0"}, WantUsage: "invalid --limit 0"},
		{Name: "HugeLimit", Args: []string{"--limit", "10001"}, WantUsage: "invalid --limit 10001"},
		{Name: "StrayArgument", Args: []string{"discarded"}, WantCobraErr: `unknown command "discarded"`},
	})
}

// now is the clock every run test reads; job times are set relative to it.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
	org    = "0a000000-0000-4000-8000-000000000001"
)

// seed inserts four sync jobs with ids 101 to 104 in known states and times
// (oldest first), plus a resync job that the listing must leave out.
func seed(t *testing.T) cmdtest.Command[Options] {
	t.Helper()
	db := cmdtest.NewDB(t)
	db.Exec(t, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	db.Enqueue(t, outbox.Entity{Kind: outbox.KindOrg, ID: org}, outbox.Entity{Kind: outbox.KindEvent, ID: event1},
		outbox.Entity{Kind: outbox.KindTicket, ID: ticket}, outbox.Entity{Kind: outbox.KindEvent, ID: event2})
	db.Exec(t, `INSERT INTO river_job (kind, args, queue, state) VALUES ('stripe_sync_resync', '{}', 'stripe_sync', 'available')`)

	errJSON := `jsonb_build_object('at', $2::timestamptz, 'attempt', $3::int, 'error', $4::text, 'trace', '')`
	// 101: an organisation out of attempts a day and a bit ago.
	db.Exec(t, `UPDATE river_job SET state = 'discarded', attempt = 25, created_at = $1, scheduled_at = $1, attempted_at = $2,
		finalized_at = $2, errors = ARRAY[`+errJSON+`] WHERE id = 101`,
		now.Add(-27*time.Hour), now.Add(-26*time.Hour), 25, "stripe update_product: 401: Invalid API Key provided")
	// 102: an event synced two hours ago.
	db.Exec(t, `UPDATE river_job SET state = 'completed', attempt = 1, created_at = $1, scheduled_at = $1, attempted_at = $1,
		finalized_at = $1 WHERE id = 102`, now.Add(-2*time.Hour))
	// 103: a ticket in the bulk lane waiting 40 s for its third attempt,
	// with a long multi-line error.
	db.Exec(t, `UPDATE river_job SET state = 'retryable', priority = 3, attempt = 2, created_at = $1, scheduled_at = $5, attempted_at = $2,
		errors = ARRAY[jsonb_build_object('at', $1::timestamptz, 'attempt', 1, 'error', 'first failure', 'trace', ''), `+errJSON+`] WHERE id = 103`,
		now.Add(-10*time.Minute), now.Add(-time.Minute), 2,
		"stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\nsecond line",
		now.Add(40*time.Second))
	// 104: an event ready for 3m12s.
	db.Exec(t, `UPDATE river_job SET created_at = $1, scheduled_at = $1 WHERE id = 104`, now.Add(-3*time.Minute-12*time.Second))
	return cmdtest.Command[Options]{NewCmd: NewCmdList, DatabaseURL: db.URL, Now: now}
}

func TestListRun(t *testing.T) {
	t.Parallel()
	cmd := seed(t)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		out, errOut := cmd.MustRun(t, true)
		require.Equal(t, ""+
			"ID   KIND    ENTITY                                STATE      LANE  ATTEMPT  WHEN       LAST ERROR\n"+
			"104  event   0e000000-0000-4000-8000-000000000002  available  live  0/25     3m12s ago  -\n"+
			"103  ticket  07000000-0000-4000-8000-000000000001  retryable  bulk  2/25     in 40s     stripe create_price: 500: An unknown error occurred while...\n"+
			"102  event   0e000000-0000-4000-8000-000000000001  completed  live  1/25     2h0m ago   -\n"+
			"101  org     0a000000-0000-4000-8000-000000000001  discarded  live  25/25    1d3h ago   stripe update_product: 401: Invalid API Key provided\n", out)
		require.Empty(t, errOut)
	})

	t.Run("PlainHasNoHeaderAbsoluteTimesAndWholeFirstLines", func(t *testing.T) {
		t.Parallel()
		out, _ := cmd.MustRun(t, false)
		require.Equal(t, ""+
			"104  event   0e000000-0000-4000-8000-000000000002  available  live  0/25   2026-03-01T11:56:48Z  -\n"+
			"103  ticket  07000000-0000-4000-8000-000000000001  retryable  bulk  2/25   2026-03-01T12:00:40Z  stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\n"+
			"102  event   0e000000-0000-4000-8000-000000000001  completed  live  1/25   2026-03-01T10:00:00Z  -\n"+
			"101  org     0a000000-0000-4000-8000-000000000001  discarded  live  25/25  2026-02-28T09:00:00Z  stripe update_product: 401: Invalid API Key provided\n", out)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		cmd.RowsCases(t, []cmdtest.RowsCase{
			{Name: "State", Args: []string{"--state", "discarded,retryable"}, Want: "103\n101\n"},
			{Name: "Kind", Args: []string{"--kind", "event"}, Want: "104\n102\n"},
			{Name: "StateAndKind", Args: []string{"--state", "completed", "--kind", "ticket"}, Want: ""},
			{Name: "Limit", Args: []string{"--limit", "2"}, Want: "104\n103\n"},
		})
	})

	t.Run("EmptyIsSuccess", func(t *testing.T) {
		t.Parallel()
		out, errOut := cmd.MustRun(t, true, "--state", "pending")
		require.Empty(t, out)
		require.Equal(t, "no jobs match\n", errOut)
		out, errOut = cmd.MustRun(t, false, "--state", "pending")
		require.Empty(t, out)
		require.Empty(t, errOut)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		out, _ := cmd.MustRun(t, true, "--json", "--limit", "2")
		var doc struct {
			Jobs []map[string]any `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Jobs, 2)
		for _, j := range doc.Jobs {
			require.ElementsMatch(t, []string{"id", "kind", "entity_id", "state", "lane", "attempt", "max_attempts",
				"created_at", "scheduled_at", "attempted_at", "finalized_at", "last_error"}, cmdtest.Keys(j))
		}
		require.Equal(t, map[string]any{
			"id": 103.0, "kind": "ticket", "entity_id": ticket, "state": "retryable", "lane": "bulk", "attempt": 2.0, "max_attempts": 25.0,
			"created_at": "2026-03-01T11:50:00Z", "scheduled_at": "2026-03-01T12:00:40Z", "attempted_at": "2026-03-01T11:59:00Z",
			"finalized_at": nil,
			"last_error":   "stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\nsecond line",
		}, doc.Jobs[1])
		require.Nil(t, doc.Jobs[0]["last_error"])
	})

	t.Run("JSONEmptyIsAnEmptyList", func(t *testing.T) {
		t.Parallel()
		out, _ := cmd.MustRun(t, false, "--json", "--state", "pending")
		require.JSONEq(t, `{"jobs": []}`, out)
	})
}
