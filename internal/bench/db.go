package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for the migrations

	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/migrations"
)

// Server makes throwaway databases on one PostgreSQL server, each a copy of
// one template that holds the LodgeTix fixture schema and every migration
// (what `syncctl migrate` installs), so every variant of a figure starts from
// the same empty state on the same server.
type Server struct {
	base     *url.URL
	admin    *pgx.Conn
	prefix   string
	template string
	version  string

	// mu guards admin (one connection) and the fields below.
	mu      sync.Mutex
	created []string
	seq     int
}

// NewServer connects to rawURL's server and builds the template database.
// Returns an error if the URL is not a PostgreSQL URL or the role may not
// create databases.
func NewServer(ctx context.Context, rawURL string) (*Server, error) {
	base, err := url.Parse(rawURL)
	if err != nil || (base.Scheme != "postgres" && base.Scheme != "postgresql") {
		return nil, fmt.Errorf("database URL is not a postgres:// URL")
	}
	admin, err := pgx.Connect(ctx, withParam(rawURL, "application_name", "stripe-sync bench"))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	s := &Server{base: base, admin: admin, prefix: fmt.Sprintf("bench_%d_%x", os.Getpid(), suffix)}
	if err := admin.QueryRow(ctx, `SELECT version()`).Scan(&s.version); err != nil {
		_ = admin.Close(ctx)
		return nil, fmt.Errorf("server version: %w", err)
	}
	s.template = s.prefix + "_template"
	if err := s.create(ctx, s.template, ""); err != nil {
		_ = admin.Close(ctx)
		return nil, err
	}
	db, err := sql.Open("pgx", s.url(s.template))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := migrations.InstallHostSchema(ctx, db); err != nil {
		return nil, err
	}
	if _, err := migrations.Up(ctx, s.url(s.template), migrations.Options{}); err != nil {
		return nil, fmt.Errorf("migrate template: %w", err)
	}
	return s, nil
}

// Version is the server's version() string.
func (s *Server) Version() string { return s.version }

// Clone creates a fresh database from the template and returns its URL.
func (s *Server) Clone(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	s.seq++
	db := fmt.Sprintf("%s_%02d_%s", s.prefix, s.seq, name)
	s.mu.Unlock()
	if err := s.create(ctx, db, s.template); err != nil {
		return "", err
	}
	return s.url(db), nil
}

// Drop removes a database made by Clone, ending its sessions first.
func (s *Server) Drop(ctx context.Context, dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	s.created = slicesDelete(s.created, name)
	return nil
}

// Close drops every database the Server made, the template last.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.created
	s.created = nil
	var first error
	for i := len(names) - 1; i >= 0; i-- {
		if _, err := s.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{names[i]}.Sanitize()+` WITH (FORCE)`); err != nil && first == nil {
			first = fmt.Errorf("drop database %s: %w", names[i], err)
		}
	}
	if err := s.admin.Close(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

func (s *Server) create(ctx context.Context, name, template string) error {
	stmt := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += ` TEMPLATE ` + pgx.Identifier{template}.Sanitize()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.admin.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	s.created = append(s.created, name)
	return nil
}

func (s *Server) url(db string) string {
	u := *s.base
	u.Path = "/" + db
	return u.String()
}

func slicesDelete(ss []string, s string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// withParam returns rawURL with the query parameter key set to value.
func withParam(rawURL, key, value string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// poolConfig is how a pool is opened: like `syncctl worker` opens its own
// (cmdutil.Factory.Pool), with an application name and a statement timeout.
type poolConfig struct {
	app string
	// maxConns overrides pgxpool's default (max(4, CPUs)) when positive.
	maxConns int32
	// counter, when set, counts the pool's round trips.
	counter *Counter
}

func openPool(ctx context.Context, dbURL string, pc poolConfig) (*pgxpool.Pool, error) {
	cfg, err := dbconn.Config(dbURL, dbconn.Options{ApplicationName: pc.app, MaxConns: pc.maxConns})
	if err != nil {
		return nil, err
	}
	if pc.counter != nil {
		cfg.ConnConfig.Tracer = pc.counter
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	// Connect now, so the search_path a new connection sets is not counted
	// as a round trip of what is measured next.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// Counter is a pgx tracer counting a pool's round trips to the server: each
// query or exec (BEGIN and COMMIT included) is one, a batch is one however
// many statements it carries, a COPY is one. Statements River issues (its
// sqlc queries start with "-- name: ") are also counted apart. Preparing a
// statement, which pgx does once per connection and statement, is counted
// apart too: it amortises away over a long run. Safe for concurrent use.
type Counter struct {
	queries  atomic.Int64
	river    atomic.Int64
	batches  atomic.Int64
	copies   atomic.Int64
	prepares atomic.Int64
}

// RoundTrips returns how many round trips the pool made, prepares excluded.
func (c *Counter) RoundTrips() int64 { return c.queries.Load() + c.batches.Load() + c.copies.Load() }

// River returns how many of the single statements were River's.
func (c *Counter) River() int64 { return c.river.Load() }

// Prepares returns how many statements were prepared.
func (c *Counter) Prepares() int64 { return c.prepares.Load() }

// Reset zeroes every count.
func (c *Counter) Reset() {
	c.queries.Store(0)
	c.river.Store(0)
	c.batches.Store(0)
	c.copies.Store(0)
	c.prepares.Store(0)
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	if strings.HasPrefix(data.SQL, "-- name: ") {
		c.river.Add(1)
	}
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer.
func (c *Counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (c *Counter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (c *Counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (c *Counter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.copies.Add(1)
	return ctx
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (c *Counter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// TracePrepareStart implements pgx.PrepareTracer.
func (c *Counter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.prepares.Add(1)
	return ctx
}

// TracePrepareEnd implements pgx.PrepareTracer.
func (c *Counter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}
