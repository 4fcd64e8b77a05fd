package show

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdShow(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdShow}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "ID", Args: []string{"42"}, Want: &Options{JobID: 42}},
		{Name: "JSON", Args: []string{"--json", "7"}, Want: &Options{JobID: 7, JSON: true}},
		{Name: "NotAnInteger", Args: []string{"4x"}, WantUsage: `malformed job id "4x": want a positive integer`},
		{Name: "Zero", Args: []string{"0"}, WantUsage: `malformed job id "0"`},
		{Name: "UUIDInsteadOfJobID", Args: []string{"0e000000-0000-4000-8000-000000000001"}, WantUsage: "malformed job id"},
		{Name: "NoID", Args: nil, WantCobraErr: "accepts 1 arg(s), received 0"},
	})
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	ticket      = "07000000-0000-4000-8000-000000000001"
	otherTicket = "07000000-0000-4000-8000-000000000002"
)

// seed makes job 101, a ticket's job on its third try after two errors and
// two snoozes, with six sync log rows for the ticket and one for another,
// and job 102, a resync job that names no entity.
func seed(t *testing.T) cmdtest.Command[Options] {
	t.Helper()
	db := cmdtest.NewDB(t)
	db.Exec(t, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	db.Enqueue(t, outbox.Entity{Kind: outbox.KindTicket, ID: ticket})
	db.Exec(t, `
		UPDATE river_job SET state = 'retryable', attempt = 2, created_at = $1, scheduled_at = $2, attempted_at = $3,
			attempted_by = ARRAY['worker-a', 'worker-b'], metadata = '{"snoozes": 2}',
			errors = ARRAY[
				jsonb_build_object('at', $1::timestamptz, 'attempt', 1, 'error', 'stripe create_price: network error: connection reset', 'trace', ''),
				jsonb_build_object('at', $3::timestamptz, 'attempt', 2, 'error', E'stripe create_price: 500: boom\n\tmore detail', 'trace', '')]
		WHERE id = 101`,
		now.Add(-10*time.Minute), now.Add(40*time.Second), now.Add(-time.Minute))
	db.Exec(t, `INSERT INTO river_job (kind, args, queue, state, created_at, scheduled_at) VALUES ('stripe_sync_resync', '{}', 'stripe_sync', 'available', $1, $1)`,
		now.Add(-5*time.Second))

	for i := 1; i <= 6; i++ {
		status, msg := "success", (*string)(nil)
		if i%2 == 0 {
			m := fmt.Sprintf("stripe create_price: 500: boom %d", i)
			status, msg = "failed", &m
		}
		db.Exec(t, `INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action, status,
				error_message, created_at, synced_at, job_id, attempt, duration_ms)
			VALUES ('ticket', $1, $2, 'acct_1', 'create', $3, $4, $5, $5, 101, $6, $7)`,
			ticket, fmt.Sprintf("price_%d", i), status, msg, now.Add(-time.Duration(7-i)*time.Hour), i, 100*i)
	}
	db.Exec(t, `INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, job_id, attempt, duration_ms)
		VALUES ('ticket', $1, 'create', 'success', 9, 1, 5)`, otherTicket)
	return cmdtest.Command[Options]{NewCmd: NewCmdShow, DatabaseURL: db.URL, Now: now}
}

func TestShowRun(t *testing.T) {
	t.Parallel()
	cmd := seed(t)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		out, errOut, err := cmd.Run(t, true, "101")
		require.NoError(t, err)
		require.Empty(t, errOut)
		require.Equal(t, ""+
			"ID:            101\n"+
			"Kind:          ticket\n"+
			"Entity:        07000000-0000-4000-8000-000000000001\n"+
			"State:         retryable\n"+
			"Attempts:      2/25\n"+
			"Queue:         stripe_sync\n"+
			"Created:       10m0s ago\n"+
			"Scheduled:     in 40s\n"+
			"Attempted:     1m0s ago\n"+
			"Finalized:     -\n"+
			"Attempted by:  worker-a, worker-b\n"+
			"Snoozes:       2\n"+
			"Args:          {\"ticket_id\": \"07000000-0000-4000-8000-000000000001\"}\n"+
			"Metadata:      {\"snoozes\": 2}\n"+
			"\n"+
			"Errors (2):\n"+
			"ATTEMPT  AT         ERROR\n"+
			"1        10m0s ago  stripe create_price: network error: connection reset\n"+
			"2        1m0s ago   stripe create_price: 500: boom more detail\n"+
			"\n"+
			"Sync log of ticket 07000000-0000-4000-8000-000000000001 (latest 5):\n"+
			"WHEN      JOB  ATTEMPT  ACTION  STATUS   DURATION  STRIPE OBJECT  ERROR\n"+
			"1h0m ago  101  6        create  failed   600ms     price_6        stripe create_price: 500: boom 6\n"+
			"2h0m ago  101  5        create  success  500ms     price_5        -\n"+
			"3h0m ago  101  4        create  failed   400ms     price_4        stripe create_price: 500: boom 4\n"+
			"4h0m ago  101  3        create  success  300ms     price_3        -\n"+
			"5h0m ago  101  2        create  failed   200ms     price_2        stripe create_price: 500: boom 2\n", out)
	})

	t.Run("PlainHasAbsoluteTimesAndNoTableHeaders", func(t *testing.T) {
		t.Parallel()
		out, _, err := cmd.Run(t, false, "101")
		require.NoError(t, err)
		require.Equal(t, ""+
			"ID:            101\n"+
			"Kind:          ticket\n"+
			"Entity:        07000000-0000-4000-8000-000000000001\n"+
			"State:         retryable\n"+
			"Attempts:      2/25\n"+
			"Queue:         stripe_sync\n"+
			"Created:       2026-03-01T11:50:00Z\n"+
			"Scheduled:     2026-03-01T12:00:40Z\n"+
			"Attempted:     2026-03-01T11:59:00Z\n"+
			"Finalized:     -\n"+
			"Attempted by:  worker-a, worker-b\n"+
			"Snoozes:       2\n"+
			"Args:          {\"ticket_id\": \"07000000-0000-4000-8000-000000000001\"}\n"+
			"Metadata:      {\"snoozes\": 2}\n"+
			"\n"+
			"Errors (2):\n"+
			"1  2026-03-01T11:50:00Z  stripe create_price: network error: connection reset\n"+
			"2  2026-03-01T11:59:00Z  stripe create_price: 500: boom more detail\n"+
			"\n"+
			"Sync log of ticket 07000000-0000-4000-8000-000000000001 (latest 5):\n"+
			"2026-03-01T11:00:00Z  101  6  create  failed   600ms  price_6  stripe create_price: 500: boom 6\n"+
			"2026-03-01T10:00:00Z  101  5  create  success  500ms  price_5  -\n"+
			"2026-03-01T09:00:00Z  101  4  create  failed   400ms  price_4  stripe create_price: 500: boom 4\n"+
			"2026-03-01T08:00:00Z  101  3  create  success  300ms  price_3  -\n"+
			"2026-03-01T07:00:00Z  101  2  create  failed   200ms  price_2  stripe create_price: 500: boom 2\n", out)
	})

	t.Run("JobNamingNoEntityHasNoSyncLog", func(t *testing.T) {
		t.Parallel()
		out, _, err := cmd.Run(t, true, "102")
		require.NoError(t, err)
		require.Contains(t, out, "Kind:          stripe_sync_resync\nEntity:        -\n")
		require.Contains(t, out, "\nErrors (0):\nATTEMPT  AT  ERROR\n")
		require.NotContains(t, out, "Sync log")
	})

	t.Run("UnknownJobExitsOne", func(t *testing.T) {
		t.Parallel()
		out, _, err := cmd.Run(t, true, "999")
		require.EqualError(t, err, "job 999 not found")
		require.Equal(t, 1, cmdutil.ExitCode(err))
		require.Empty(t, out)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		out, _, err := cmd.Run(t, false, "101", "--json")
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.ElementsMatch(t, []string{"id", "kind", "entity_id", "state", "queue", "attempt", "max_attempts",
			"created_at", "scheduled_at", "attempted_at", "finalized_at", "attempted_by", "args", "metadata",
			"snoozes", "errors", "sync_log"}, cmdtest.Keys(doc))
		require.Equal(t, 101.0, doc["id"])
		require.Equal(t, "ticket", doc["kind"])
		require.Equal(t, ticket, doc["entity_id"])
		require.Equal(t, "2026-03-01T11:50:00Z", doc["created_at"])
		require.Nil(t, doc["finalized_at"])
		require.Equal(t, map[string]any{"ticket_id": ticket}, doc["args"])
		require.Equal(t, 2.0, doc["snoozes"])
		require.Equal(t, []any{
			map[string]any{"attempt": 1.0, "at": "2026-03-01T11:50:00Z", "error": "stripe create_price: network error: connection reset", "trace": ""},
			map[string]any{"attempt": 2.0, "at": "2026-03-01T11:59:00Z", "error": "stripe create_price: 500: boom\n\tmore detail", "trace": ""},
		}, doc["errors"])

		log := doc["sync_log"].([]any)
		require.Len(t, log, 5)
		require.Equal(t, map[string]any{
			"created_at": "2026-03-01T11:00:00Z", "job_id": 101.0, "attempt": 6.0, "action": "create", "status": "failed",
			"duration_ms": 600.0, "stripe_object_id": "price_6", "error_message": "stripe create_price: 500: boom 6",
		}, log[0])
		require.Nil(t, log[1].(map[string]any)["error_message"])
	})
}
