package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// presenceClass is the first key of the presence lock (the two-key form of
// PostgreSQL's advisory locks, a key space apart from the one-bigint keys
// the jobs' entity locks use); the second is hashtext of the sync schema, so
// two installations in one database count their workers apart.
const presenceClass = 727100010

// presenceLockSQL takes the presence lock for the schema on the search_path.
const presenceLockSQL = `SELECT pg_advisory_lock_shared($1, hashtext(current_schema()))`

const presenceUnlockSQL = `SELECT pg_advisory_unlock_shared($1, hashtext(current_schema()))`

// DefaultPresenceCheck is PresenceOptions.CheckEvery's default.
const DefaultPresenceCheck = 10 * time.Second

// PresenceOptions tune Announce.
type PresenceOptions struct {
	// CheckEvery is how often the presence's connection is checked, and
	// re-established (lock and all) when it was lost. Defaults to
	// DefaultPresenceCheck.
	CheckEvery time.Duration
	// OnError, when set, is told of each failed check or re-establishment.
	// Defaults to ignoring them: the next check tries again.
	OnError func(error)
}

// Presence is a worker process's mark that it works the sync queue: a
// shared session-level advisory lock, held on a connection of its own for
// as long as the process runs. Workers counts the holders.
//
// A lock rather than a heartbeat row or River's leader lease: River's lease
// may be held by any River client on the schema, insert-only or not ours,
// and a heartbeat leaves a killed worker looking alive until it goes stale.
// PostgreSQL drops a session's locks the moment the session ends, so a
// worker that dies stops counting at once, and nothing has to be written.
type Presence struct {
	pool  *pgxpool.Pool
	opts  PresenceOptions
	stop  chan struct{}
	done  chan struct{}
	close sync.Once

	mu   sync.Mutex
	conn *pgxpool.Conn
}

// Announce takes the presence lock on a connection of pool, which it holds
// until Close (size the pool one larger), and keeps it while the process
// runs. Returns an error if the lock cannot be taken now.
func Announce(ctx context.Context, pool *pgxpool.Pool, opts PresenceOptions) (*Presence, error) {
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = DefaultPresenceCheck
	}
	p := &Presence{pool: pool, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := p.lock(ctx)
	if err != nil {
		return nil, err
	}
	p.conn = conn
	go p.keep()
	return p, nil
}

func (p *Presence) lock(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("announce worker: %w", err)
	}
	if _, err := conn.Exec(ctx, presenceLockSQL, presenceClass); err != nil {
		// The connection may hold the lock or not: never give it back.
		_ = conn.Hijack().Close(context.Background())
		return nil, fmt.Errorf("announce worker: %w", err)
	}
	return conn, nil
}

// keep checks the connection every CheckEvery and, when the session is gone
// (a restarted database, a terminated backend), takes the lock again on a
// fresh one.
func (p *Presence) keep() {
	defer close(p.done)
	ticker := time.NewTicker(p.opts.CheckEvery)
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.CheckEvery)
		err := p.check(ctx)
		cancel()
		if err != nil && p.opts.OnError != nil {
			p.opts.OnError(err)
		}
	}
}

func (p *Presence) check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		if err := p.conn.Ping(ctx); err == nil {
			return nil
		}
		_ = p.conn.Hijack().Close(context.Background())
		p.conn = nil
	}
	conn, err := p.lock(ctx)
	if err != nil {
		return err
	}
	p.conn = conn
	return nil
}

// Close gives up the presence: it releases the lock and closes the
// connection rather than return it, so no pool user could inherit the lock.
// Workers no longer counts this process once Close returns.
func (p *Presence) Close() {
	p.close.Do(func() {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.conn != nil {
			// Unlock first: a closed connection's backend drops its locks
			// only once it has noticed, a moment later, and Workers must
			// not count a worker that has returned from Close.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = p.conn.Exec(ctx, presenceUnlockSQL, presenceClass)
			_ = p.conn.Hijack().Close(ctx)
			p.conn = nil
		}
	})
}

// WorkerSession is one session holding a worker's presence lock.
type WorkerSession struct {
	// PID is the PostgreSQL backend's process id.
	PID int
	// ConnectedAt is when the session began; nil when the reader may not see
	// it (pg_stat_activity shows another role's sessions only to a role with
	// pg_read_all_stats).
	ConnectedAt *time.Time
}

// Workers returns the sessions of the worker processes that hold their
// Presence on the sync schema of q's connection, oldest first. None means no
// syncctl worker runs on this database, whatever River's leader table says.
func Workers(ctx context.Context, q Querier) ([]WorkerSession, error) {
	rows, err := q.Query(ctx, `
		SELECT l.pid, a.backend_start
		FROM pg_locks l
		LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint = $1 AND l.objid::bigint = hashtext(current_schema())::bigint & 4294967295
		ORDER BY a.backend_start NULLS LAST, l.pid`, presenceClass)
	if err != nil {
		return nil, fmt.Errorf("find workers: %w", err)
	}
	sessions, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WorkerSession, error) {
		var s WorkerSession
		err := row.Scan(&s.PID, &s.ConnectedAt)
		if s.ConnectedAt != nil {
			*s.ConnectedAt = s.ConnectedAt.UTC()
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("find workers: %w", err)
	}
	return sessions, nil
}
