package status

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdStatus(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdStatus}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{}},
		{Name: "JSON", Args: []string{"--json"}, Want: &Options{JSON: true}},
		{Name: "StrayArgument", Args: []string{"now"}, WantCobraErr: `unknown command "now"`},
		{Name: "UnknownFlag", Args: []string{"--watch"}, WantCobraErr: "unknown flag: --watch"},
	})
}

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
	org    = "0a000000-0000-4000-8000-000000000001"
)

type testBundle struct {
	*cmdtest.DB
	// now is the clock the command reads. It is the real time, because the
	// stripe_sync_health view counts the last 24 hours by the database's
	// clock; every row is written relative to it.
	now time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{DB: cmdtest.NewDB(t), now: time.Now().UTC().Truncate(time.Second)}
}

// announce holds a worker's presence on a pool of its own until t ends.
func (b *testBundle) announce(t *testing.T) *outbox.Presence {
	t.Helper()
	p, err := outbox.Announce(context.Background(), testdb.Pool(t, b.URL), outbox.PresenceOptions{})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func (b *testBundle) ago(d time.Duration) time.Time { return b.now.Add(-d) }

func (b *testBundle) run(t *testing.T, terminal bool, args ...string) (string, string) {
	t.Helper()
	return cmdtest.Command[Options]{NewCmd: NewCmdStatus, DatabaseURL: b.URL, Now: b.now}.MustRun(t, terminal, args...)
}

// troubled seeds a database whose worker died five minutes ago, leaving
// jobs 101 and 102 ready, a ticket retrying, an organisation out of
// attempts, and a sync log with a Stripe 403.
func troubled(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t)
	b.Exec(t, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	b.Enqueue(t, outbox.Entity{Kind: outbox.KindEvent, ID: event1}, outbox.Entity{Kind: outbox.KindEvent, ID: event2},
		outbox.Entity{Kind: outbox.KindTicket, ID: ticket}, outbox.Entity{Kind: outbox.KindOrg, ID: org})
	b.Exec(t, `INSERT INTO river_leader (leader_id, elected_at, expires_at) VALUES ('worker-host-1', $1, $2)`, b.ago(time.Hour), b.ago(5*time.Minute))
	b.Exec(t, `UPDATE river_job SET created_at = $2, scheduled_at = $2 WHERE id = $1`, 101, b.ago(3*time.Minute+12*time.Second))
	// 102 waits in the bulk lane (a backfill's job).
	b.Exec(t, `UPDATE river_job SET created_at = $2, scheduled_at = $2, priority = 3 WHERE id = $1`, 102, b.ago(10*time.Second))
	b.Exec(t, `UPDATE river_job SET state = 'retryable', attempt = 2, scheduled_at = $2, attempted_at = $3, errors = ARRAY[
			jsonb_build_object('at', $4::timestamptz, 'attempt', 1, 'error', 'stripe create_price: network error: reset', 'trace', ''),
			jsonb_build_object('at', $3::timestamptz, 'attempt', 2, 'error', 'stripe create_price: 500: boom', 'trace', '')]
		WHERE id = $1`, 103, b.now.Add(time.Minute), b.ago(time.Minute), b.ago(3*time.Minute))
	b.Exec(t, `UPDATE river_job SET state = 'discarded', attempt = 25, finalized_at = $2, attempted_at = $2, errors = ARRAY[
			jsonb_build_object('at', $2::timestamptz, 'attempt', 25, 'error', 'stripe update_product: 500: still down', 'trace', '')]
		WHERE id = $1`, 104, b.ago(2*time.Hour))
	// A resync job is not a sync job: status leaves it out.
	b.Exec(t, `INSERT INTO river_job (kind, args, queue, state, scheduled_at) VALUES ('stripe_sync_resync', '{}', 'stripe_sync', 'available', $1)`, b.ago(time.Hour))

	b.Exec(t, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, error_message, created_at, synced_at, job_id, attempt) VALUES
		('event', $1, 'create', 'success', NULL, $2, $2, 90, 1),
		('event', $1, 'update', 'failed', 'stripe update_product: 403 account_invalid: The provided key does not have access to account acct_1', $3, $3, 91, 1),
		('event', $1, 'update', 'failed', 'stripe update_product: 401: Invalid API Key provided', $4, $4, 92, 1),
		('ticket', $5, 'create', 'failed', 'stripe create_price: 500: boom', $6, $6, 103, 2),
		('ticket', $5, 'sync', 'skipped', 'organisation has no connected account', $7, $7, 80, 1),
		('org', $8, 'sync', 'success', NULL, $9, $9, 70, 1)`,
		event1, b.ago(time.Hour), b.ago(30*time.Minute), b.ago(25*time.Hour),
		ticket, b.ago(time.Minute), b.ago(26*time.Hour), org, b.ago(48*time.Hour))
	return b
}

func TestStatusRun(t *testing.T) {
	t.Parallel()

	t.Run("WorkerDeadTerminal", func(t *testing.T) {
		t.Parallel()
		b := troubled(t)
		out, errOut := b.run(t, true)
		require.Equal(t, ""+
			"syncctl: warning: NO WORKER ALIVE: sync jobs are not being worked; start `syncctl worker`\n"+
			"syncctl: warning: Stripe refused 1 sync attempts with 401/403 in the last 24 h; check STRIPE_SECRET_KEY and the organisations' connected accounts\n",
			errOut)
		require.Equal(t, ""+
			"Worker:                NO WORKER ALIVE (last River leader worker-host-1, lease expired 5m0s ago)\n"+
			"Oldest waiting:        job 101 (event 0e000000-0000-4000-8000-000000000001), ready for 3m12s\n"+
			"Auth failures (24 h):  1, latest 30m0s ago: stripe update_product: 403 account_invalid: The provided key does n...\n"+
			"Unreachable accounts:  none\n"+
			"\n"+
			"Queue:\n"+
			"KIND    STATE      LANE  JOBS\n"+
			"event   available  live  1\n"+
			"event   available  bulk  1\n"+
			"ticket  retryable  live  1\n"+
			"org     discarded  live  1\n"+
			"\n"+
			"Sync log, last 24 h:\n"+
			"TYPE    SUCCESS  FAILED  SKIPPED  LAST SYNC\n"+
			"event   1        1       0        30m0s ago\n"+
			"ticket  0        1       0        1m0s ago\n"+
			"org     0        0       0        2d0h ago\n"+
			"\n"+
			"Latest error per kind:\n"+
			"KIND    WHEN       JOB  ENTITY                                ERROR\n"+
			"event   30m0s ago  91   0e000000-0000-4000-8000-000000000001  stripe update_product: 403 account_invalid: The provided key does n...\n"+
			"ticket  1m0s ago   103  07000000-0000-4000-8000-000000000001  stripe create_price: 500: boom\n"+
			"org     2h0m ago   104  0a000000-0000-4000-8000-000000000001  stripe update_product: 500: still down\n", out)
	})

	t.Run("WorkerDeadPlain", func(t *testing.T) {
		t.Parallel()
		b := troubled(t)
		out, _ := b.run(t, false)
		at := func(d time.Duration) string { return b.ago(d).Format(time.RFC3339) }
		require.Equal(t, ""+
			"Worker:                NO WORKER ALIVE (last River leader worker-host-1, lease expired "+at(5*time.Minute)+")\n"+
			"Oldest waiting:        job 101 (event 0e000000-0000-4000-8000-000000000001), ready for 3m12s\n"+
			"Auth failures (24 h):  1, latest "+at(30*time.Minute)+": stripe update_product: 403 account_invalid: The provided key does not have access to account acct_1\n"+
			"Unreachable accounts:  none\n"+
			"\n"+
			"Queue:\n"+
			"event   available  live  1\n"+
			"event   available  bulk  1\n"+
			"ticket  retryable  live  1\n"+
			"org     discarded  live  1\n"+
			"\n"+
			"Sync log, last 24 h:\n"+
			"event   1  1  0  "+at(30*time.Minute)+"\n"+
			"ticket  0  1  0  "+at(time.Minute)+"\n"+
			"org     0  0  0  "+at(48*time.Hour)+"\n"+
			"\n"+
			"Latest error per kind:\n"+
			"event   "+at(30*time.Minute)+"  91   0e000000-0000-4000-8000-000000000001  stripe update_product: 403 account_invalid: The provided key does not have access to account acct_1\n"+
			"ticket  "+at(time.Minute)+"  103  07000000-0000-4000-8000-000000000001  stripe create_price: 500: boom\n"+
			"org     "+at(2*time.Hour)+"  104  0a000000-0000-4000-8000-000000000001  stripe update_product: 500: still down\n", out)
	})

	t.Run("HealthyAndEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.announce(t)
		b.Exec(t, `INSERT INTO river_leader (leader_id, elected_at, expires_at) VALUES ('worker-host-2', $1, $2)`, b.ago(2*time.Hour), b.now.Add(20*time.Second))
		out, errOut := b.run(t, true)
		require.Empty(t, errOut)
		require.Equal(t, ""+
			"Worker:                alive (1 worker process; River leader worker-host-2, elected 2h0m ago, lease expires in 20s)\n"+
			"Oldest waiting:        none\n"+
			"Auth failures (24 h):  none\n"+
			"Unreachable accounts:  none\n"+
			"\n"+
			"Queue: none\n"+
			"\n"+
			"Sync log, last 24 h:\n"+
			"TYPE    SUCCESS  FAILED  SKIPPED  LAST SYNC\n"+
			"event   0        0       0        -\n"+
			"ticket  0        0       0        -\n"+
			"org     0        0       0        -\n"+
			"\n"+
			"Latest error per kind: none\n", out)
	})

	t.Run("AliveWithoutLeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.announce(t)
		b.announce(t)
		out, errOut := b.run(t, false)
		require.Empty(t, errOut)
		require.Contains(t, out, "Worker:                alive (2 worker processes; no current River leader)\n")
	})

	t.Run("ForeignLeaderIsNoWorker", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.Exec(t, `INSERT INTO river_leader (leader_id, elected_at, expires_at) VALUES ('some-other-app', $1, $2)`, b.ago(time.Hour), b.now.Add(20*time.Second))
		out, errOut := b.run(t, true)
		require.Contains(t, out, "Worker:                NO WORKER ALIVE (no syncctl worker is connected; River leader some-other-app, lease expires in 20s, is not one)\n")
		require.Contains(t, errOut, "NO WORKER ALIVE")
	})

	t.Run("NoLeaderEver", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out, errOut := b.run(t, false)
		require.Contains(t, out, "Worker:                NO WORKER ALIVE (no River leader was ever elected)\n")
		require.Contains(t, errOut, "NO WORKER ALIVE")
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := troubled(t)
		out, _ := b.run(t, true, "--json")
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.ElementsMatch(t, []string{"worker", "queue", "oldest_waiting", "health", "latest_errors", "auth_failures_24h", "unreachable_accounts"}, cmdtest.Keys(doc))
		at := func(d time.Duration) string { return b.ago(d).Format(time.RFC3339) }

		require.Equal(t, map[string]any{"alive": false, "processes": 0.0, "leader_id": "worker-host-1", "elected_at": at(time.Hour), "expires_at": at(5 * time.Minute)}, doc["worker"])
		require.Equal(t, []any{
			map[string]any{"kind": "event", "state": "available", "lane": "live", "count": 1.0},
			map[string]any{"kind": "event", "state": "available", "lane": "bulk", "count": 1.0},
			map[string]any{"kind": "ticket", "state": "retryable", "lane": "live", "count": 1.0},
			map[string]any{"kind": "org", "state": "discarded", "lane": "live", "count": 1.0},
		}, doc["queue"])
		require.Equal(t, map[string]any{"job_id": 101.0, "kind": "event", "entity_id": event1, "ready_since": at(3*time.Minute + 12*time.Second), "age_seconds": 192.0}, doc["oldest_waiting"])
		require.Equal(t, map[string]any{"entity_type": "event", "success": 1.0, "failed": 1.0, "skipped": 0.0, "last_sync": at(30 * time.Minute)}, doc["health"].([]any)[0])
		require.Len(t, doc["health"], 3)
		require.Equal(t, []any{
			map[string]any{"kind": "event", "at": at(30 * time.Minute), "job_id": 91.0, "entity_id": event1, "source": "stripe_sync_log",
				"error": "stripe update_product: 403 account_invalid: The provided key does not have access to account acct_1"},
			map[string]any{"kind": "ticket", "at": at(time.Minute), "job_id": 103.0, "entity_id": ticket, "source": "river_job", "error": "stripe create_price: 500: boom"},
			map[string]any{"kind": "org", "at": at(2 * time.Hour), "job_id": 104.0, "entity_id": org, "source": "river_job", "error": "stripe update_product: 500: still down"},
		}, doc["latest_errors"])
		require.Equal(t, map[string]any{"count": 1.0, "latest_at": at(30 * time.Minute),
			"latest_error": "stripe update_product: 403 account_invalid: The provided key does not have access to account acct_1"}, doc["auth_failures_24h"])
	})

	t.Run("JSONWhenEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out, _ := b.run(t, false, "--json")
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, map[string]any{"alive": false, "processes": 0.0, "leader_id": nil, "elected_at": nil, "expires_at": nil}, doc["worker"])
		require.Equal(t, []any{}, doc["queue"])
		require.Nil(t, doc["oldest_waiting"])
		require.Equal(t, []any{}, doc["latest_errors"])
		require.Equal(t, map[string]any{"count": 0.0, "latest_at": nil, "latest_error": nil}, doc["auth_failures_24h"])
	})
}

// TestStatusRun_presence checks liveness against a worker's real presence
// lock, not a hand-written row: it counts while held and not a moment after.
func TestStatusRun_presence(t *testing.T) {
	t.Parallel()
	b := setup(t)
	workers := func() Worker {
		out, _ := b.run(t, false, "--json")
		var doc struct {
			Worker Worker `json:"worker"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		return doc.Worker
	}
	p := b.announce(t)
	require.Equal(t, Worker{Alive: true, Processes: 1}, workers())
	p.Close()
	require.Equal(t, Worker{Alive: false, Processes: 0}, workers())
}
