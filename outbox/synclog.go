package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LogStatuses are the values of stripe_sync_log.status: every attempt to
// sync an entity writes one row with one of them.
var LogStatuses = []string{"success", "failed", "skipped"}

// DefaultLogLimit is LogFilter.Limit's default.
const DefaultLogLimit = 50

// LogEntry is one stripe_sync_log row: one attempt to sync one entity.
type LogEntry struct {
	ID         string
	CreatedAt  time.Time
	EntityType string
	EntityID   string
	// Action is what the attempt did (create, update, archive, unchanged,
	// sync, ...), Status how it ended (one of LogStatuses).
	Action             string
	Status             string
	StripeObjectID     *string
	ConnectedAccountID *string
	ErrorMessage       *string
	// JobID and Attempt are nil for rows written outside a River job.
	JobID      *int64
	Attempt    *int
	DurationMS *int
}

// LogFilter selects the rows SyncLog returns. The zero value selects the
// DefaultLogLimit newest rows.
type LogFilter struct {
	// Entity keeps rows about one entity. Its Kind may be empty: entity ids
	// are UUIDs, unique across kinds. Defaults to every entity.
	Entity Entity
	// Status keeps rows of one of LogStatuses. Defaults to every status.
	Status string
	// Since keeps rows written at or after it. Defaults to any time.
	Since time.Time
	// Limit caps how many rows are returned. Defaults to DefaultLogLimit.
	Limit int
}

const logColumns = `id::text, created_at, entity_type, entity_id::text, action, status, stripe_object_id,
	connected_account_id, error_message, job_id, attempt, duration_ms`

func scanLogEntry(row pgx.CollectableRow) (LogEntry, error) {
	var e LogEntry
	err := row.Scan(&e.ID, &e.CreatedAt, &e.EntityType, &e.EntityID, &e.Action, &e.Status, &e.StripeObjectID,
		&e.ConnectedAccountID, &e.ErrorMessage, &e.JobID, &e.Attempt, &e.DurationMS)
	e.CreatedAt = e.CreatedAt.UTC()
	return e, err
}

// SyncLog returns the sync log rows filter selects, newest first. An entity
// id must be in ParseID's canonical form.
func SyncLog(ctx context.Context, q Querier, filter LogFilter) ([]LogEntry, error) {
	var since *time.Time
	if !filter.Since.IsZero() {
		since = &filter.Since
	}
	limit := filter.Limit
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	rows, err := q.Query(ctx, `
		SELECT `+logColumns+`
		FROM stripe_sync_log
		WHERE ($1 = '' OR entity_id = nullif($1, '')::uuid)
		  AND ($2 = '' OR entity_type = $2)
		  AND ($3 = '' OR status = $3)
		  AND ($4::timestamptz IS NULL OR created_at >= $4)
		ORDER BY created_at DESC, id DESC
		LIMIT $5`, filter.Entity.ID, string(filter.Entity.Kind), filter.Status, since, limit)
	if err != nil {
		return nil, fmt.Errorf("read sync log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, scanLogEntry)
	if err != nil {
		return nil, fmt.Errorf("read sync log: %w", err)
	}
	return entries, nil
}

// Health is one Kind's sync log over the last 24 hours, by the database's
// clock.
type Health struct {
	Kind    Kind
	Success int
	Failed  int
	Skipped int
	// LastSync is the newest row's time at any age, nil if none.
	LastSync *time.Time
}

// SyncHealth returns one Health per Kind, in Kinds order, with zeros for a
// Kind the log has nothing about: "no failures" reads as a zero, not as a
// missing line.
func SyncHealth(ctx context.Context, q Querier) ([]Health, error) {
	types := make([]string, len(Kinds))
	for i, k := range Kinds {
		types[i] = string(k)
	}
	rows, err := q.Query(ctx, `
		SELECT t.entity_type, coalesce(h.success_24h, 0), coalesce(h.failed_24h, 0), coalesce(h.skipped_24h, 0), h.last_sync
		FROM unnest($1::text[]) WITH ORDINALITY AS t(entity_type, n)
		LEFT JOIN stripe_sync_health h ON h.entity_type = t.entity_type
		ORDER BY t.n`, types)
	if err != nil {
		return nil, fmt.Errorf("read sync health: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Health, error) {
		var (
			h    Health
			kind string
		)
		err := row.Scan(&kind, &h.Success, &h.Failed, &h.Skipped, &h.LastSync)
		h.Kind = Kind(kind)
		if h.LastSync != nil {
			*h.LastSync = h.LastSync.UTC()
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sync health: %w", err)
	}
	return hs, nil
}

// LatestFailures returns each Kind's newest failed sync log row, keyed by
// Kind; a Kind with none is absent. The log outlives River's job retention,
// so it remembers failures River has forgotten.
func LatestFailures(ctx context.Context, q Querier) (map[Kind]LogEntry, error) {
	latest := map[Kind]LogEntry{}
	for _, k := range Kinds {
		rows, err := q.Query(ctx, `
			SELECT `+logColumns+` FROM stripe_sync_log
			WHERE status = 'failed' AND entity_type = $1
			ORDER BY created_at DESC, id DESC
			LIMIT 1`, string(k))
		if err != nil {
			return nil, fmt.Errorf("read latest failure: %w", err)
		}
		e, err := pgx.CollectExactlyOneRow(rows, scanLogEntry)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read latest failure: %w", err)
		}
		latest[k] = e
	}
	return latest, nil
}

// AuthFailureCount counts the sync attempts Stripe refused with 401 (a bad or
// revoked platform key) or 403 (a connected account that no longer lets the
// platform in).
type AuthFailureCount struct {
	Count int
	// Latest is the newest such row, nil when Count is 0.
	Latest *LogEntry
}

// AuthFailures returns the AuthFailureCount of the 24 hours before now. It
// recognises the failures by the message stripeclient writes for them:
// "stripe <op>: 401: ..." or "stripe <op>: 403 <code>: ...".
func AuthFailures(ctx context.Context, q Querier, now time.Time) (AuthFailureCount, error) {
	rows, err := q.Query(ctx, `
		SELECT count(*) OVER (), `+logColumns+` FROM stripe_sync_log
		WHERE status = 'failed' AND created_at > $1::timestamptz - interval '24 hours'
		  AND error_message ~ ': 40[13][ :]'
		ORDER BY created_at DESC, id DESC
		LIMIT 1`, now)
	if err != nil {
		return AuthFailureCount{}, fmt.Errorf("count auth failures: %w", err)
	}
	var a AuthFailureCount
	e, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (LogEntry, error) {
		var e LogEntry
		err := row.Scan(&a.Count, &e.ID, &e.CreatedAt, &e.EntityType, &e.EntityID, &e.Action, &e.Status, &e.StripeObjectID,
			&e.ConnectedAccountID, &e.ErrorMessage, &e.JobID, &e.Attempt, &e.DurationMS)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return AuthFailureCount{}, nil
	}
	if err != nil {
		return AuthFailureCount{}, fmt.Errorf("count auth failures: %w", err)
	}
	a.Latest = &e
	return a, nil
}
