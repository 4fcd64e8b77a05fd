package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/migrations"
)

// apiRoles are the roles Supabase's Data API runs requests as (anon key,
// signed-in users, the service key).
var apiRoles = []string{"anon", "authenticated", "service_role"}

// TestUp_nothingInPublic: every object migrate creates lives in the sync
// schema; only the triggers (and the worker's policies) sit on host tables.
func TestUp_nothingInPublic(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	rows := collect(t, pool, `
		SELECT 'relation ' || relname FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND (relname LIKE 'river%' OR relname LIKE 'stripe\_sync%')
		UNION ALL
		SELECT 'function ' || proname FROM pg_proc
		WHERE pronamespace = 'public'::regnamespace AND (proname LIKE 'river%' OR proname LIKE 'stripe\_sync%')
		UNION ALL
		SELECT 'type ' || typname FROM pg_type
		WHERE typnamespace = 'public'::regnamespace AND (typname LIKE 'river%' OR typname LIKE 'stripe\_sync%')`)
	require.Empty(t, rows)

	inSchema := collect(t, pool, `
		SELECT relname FROM pg_class WHERE relnamespace = 'stripe_sync'::regnamespace AND relkind IN ('r', 'v')
		ORDER BY relname`)
	require.Subset(t, inSchema, []string{
		"river_job", "river_leader", "river_migration", "river_queue",
		"stripe_sync_health", "stripe_sync_log", "stripe_sync_migrations", "stripe_sync_rate_limit", "stripe_sync_state",
	})
}

// TestUp_onlyOwnerAndWorkerHavePrivileges reads every ACL in the schema:
// the grantees are the object's owner and the worker role, never PUBLIC or
// an API role, even though the test database's default privileges grant
// everything new in public to anon, authenticated and service_role.
func TestUp_onlyOwnerAndWorkerHavePrivileges(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	strangers := collect(t, pool, `
		WITH acls AS (
			SELECT 'schema ' || nspname AS object, nspowner AS owner, coalesce(nspacl, acldefault('n', nspowner)) AS acl
			FROM pg_namespace WHERE nspname = 'stripe_sync'
			UNION ALL
			SELECT 'relation ' || relname, relowner,
			       coalesce(relacl, acldefault(CASE WHEN relkind = 'S' THEN 's'::"char" ELSE 'r'::"char" END, relowner))
			FROM pg_class WHERE relnamespace = 'stripe_sync'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
			UNION ALL
			SELECT 'function ' || proname, proowner, coalesce(proacl, acldefault('f', proowner))
			FROM pg_proc WHERE pronamespace = 'stripe_sync'::regnamespace
			UNION ALL
			SELECT 'type ' || typname, typowner, coalesce(typacl, acldefault('T', typowner))
			FROM pg_type WHERE typnamespace = 'stripe_sync'::regnamespace
			-- Array types and tables' row types take no privileges of their own.
			  AND typcategory <> 'A' AND (typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = typrelid) = 'c')
		)
		SELECT object || ' to ' || CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
		FROM acls, aclexplode(acl) a
		WHERE a.grantee <> owner AND a.grantee <> 'stripe_sync_worker'::regrole
		ORDER BY 1`)
	require.Empty(t, strangers)

	for _, role := range apiRoles {
		var schemaUsage, anyTable, anyFunction bool
		require.NoError(t, pool.QueryRow(context.Background(), `
			SELECT has_schema_privilege($1, 'stripe_sync', 'USAGE, CREATE'),
			       EXISTS (SELECT FROM pg_class WHERE relnamespace = 'stripe_sync'::regnamespace AND relkind IN ('r', 'v', 'S')
			               AND has_table_privilege($1, oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
			       EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'stripe_sync'::regnamespace
			               AND has_function_privilege($1, oid, 'EXECUTE'))`, role).
			Scan(&schemaUsage, &anyTable, &anyFunction))
		require.False(t, schemaUsage, role)
		require.False(t, anyTable, role)
		require.False(t, anyFunction, role)
	}
}

// TestUp_apiRolesAreRefused tries, as each Data API role, what the anon key
// could do through /rest/v1 if the schema were reachable: read the jobs,
// forge one, mark an entity handled, stall the rate limiter.
func TestUp_apiRolesAreRefused(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	attempts := []string{
		`SELECT count(*) FROM stripe_sync.river_job`,
		`SELECT * FROM stripe_sync.stripe_sync_log`,
		`SELECT * FROM stripe_sync.stripe_sync_health`,
		`SELECT stripe_sync.stripe_sync_enqueue('stripe_sync_event', 'event', 'event_id', gen_random_uuid())`,
		`SELECT stripe_sync.stripe_sync_touch('event', gen_random_uuid())`,
		`UPDATE stripe_sync.stripe_sync_state SET handled_version = wanted_version`,
		`DELETE FROM stripe_sync.river_job`,
		`INSERT INTO stripe_sync.river_leader (elected_at, expires_at, leader_id) VALUES (now(), now() + interval '100 years', 'x')`,
		`SELECT stripe_sync.stripe_sync_rate_penalize('global', 1e9, 0)`,
		`UPDATE stripe_sync.stripe_sync_rate_limit SET tat = now() + interval '10 years'`,
	}
	for _, role := range apiRoles {
		for _, stmt := range attempts {
			err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(context.Background(), "SET LOCAL ROLE "+role); err != nil {
					return err
				}
				_, err := tx.Exec(context.Background(), stmt)
				return err
			})
			require.ErrorContains(t, err, "permission denied for schema stripe_sync", "%s: %s", role, stmt)
		}
	}
}

// TestUp_supabaseSecurityLints runs catalog queries equivalent to Supabase's
// Security Advisor lints (supabase/splinter lints/0010, 0011, 0013, 0028,
// 0029), with the sync schema counted as exposed to the Data API as if an
// operator had added it to PostgREST's db_schemas by mistake: nothing of
// ours is reported.
func TestUp_supabaseSecurityLints(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	const exposed = `ARRAY['public', 'stripe_sync']`
	const ours = `(n.nspname = 'stripe_sync' OR c_name LIKE 'stripe\_sync%' OR c_name LIKE 'river%')`
	lints := map[string]string{
		// 0013: a table the API roles can select from, without row security.
		"rls_disabled_in_public": `
			SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
			LATERAL (SELECT c.relname AS c_name) x
			WHERE c.relkind = 'r' AND NOT c.relrowsecurity
			  AND (has_table_privilege('anon', c.oid, 'SELECT') OR has_table_privilege('authenticated', c.oid, 'SELECT'))
			  AND n.nspname = ANY (` + exposed + `) AND ` + ours,
		// 0010: a view running with its owner's rights that the API roles can select from.
		"security_definer_view": `
			SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
			LATERAL (SELECT c.relname AS c_name) x
			WHERE c.relkind = 'v'
			  AND (has_table_privilege('anon', c.oid, 'SELECT') OR has_table_privilege('authenticated', c.oid, 'SELECT'))
			  AND n.nspname = ANY (` + exposed + `) AND ` + ours + `
			  AND NOT lower(coalesce(c.reloptions::text, '{}'))::text[] && ARRAY['security_invoker=1', 'security_invoker=true', 'security_invoker=yes', 'security_invoker=on']`,
		// 0011: any function (exposed or not) without a fixed search_path.
		"function_search_path_mutable": `
			SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
			LATERAL (SELECT p.proname::text AS c_name) x
			WHERE ` + ours + ` AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			  AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proconfig, '{}')) cfg WHERE cfg LIKE 'search\_path=%')`,
		// 0028 and 0029: a SECURITY DEFINER function the API roles may execute.
		"anon_or_authenticated_security_definer_function_executable": `
			SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
			LATERAL (SELECT p.proname::text AS c_name) x
			WHERE p.prosecdef AND ` + ours + `
			  AND (has_function_privilege('anon', p.oid, 'EXECUTE') OR has_function_privilege('authenticated', p.oid, 'EXECUTE'))
			  AND n.nspname = ANY (` + exposed + `)`,
	}
	for name, query := range lints {
		require.Empty(t, collect(t, pool, query), name)
	}
	// The lint queries can find something: the host's own public tables,
	// before row security, are what rls_disabled_in_public is for.
	_, err := pool.Exec(context.Background(), `CREATE TABLE public.stripe_sync_lint_probe (id int)`)
	require.NoError(t, err)
	require.Equal(t, []string{"public.stripe_sync_lint_probe"}, collect(t, pool, lints["rls_disabled_in_public"]))
}

func collect(t *testing.T, pool *pgxpool.Pool, query string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), query, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestUp_locksDownWhatAFutureRiverMigrationAdds: objects that appear in the
// schema later (a River upgrade's table or function, made by the owner with
// PostgreSQL's defaults: EXECUTE for PUBLIC) are locked down by the next
// migrate, and the worker role is given them.
func TestUp_locksDownWhatAFutureRiverMigrationAdds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	_, err := pool.Exec(ctx, `
		CREATE TABLE stripe_sync.river_future (id bigint PRIMARY KEY);
		GRANT SELECT ON stripe_sync.river_future TO anon;
		CREATE FUNCTION stripe_sync.river_future_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'`)
	require.NoError(t, err)
	var publicExecutes bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT has_function_privilege('public', 'stripe_sync.river_future_fn()', 'EXECUTE')`).Scan(&publicExecutes))
	require.True(t, publicExecutes, "PostgreSQL's default, before the lockdown")

	_, err = migrations.Up(ctx, url, migrations.Options{})
	require.NoError(t, err)

	var anonSelects, publicStillExecutes, workerSelects, workerExecutes, rowSecurity bool
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT has_table_privilege('anon', 'stripe_sync.river_future', 'SELECT'),
		       has_function_privilege('public', 'stripe_sync.river_future_fn()', 'EXECUTE'),
		       has_table_privilege($1, 'stripe_sync.river_future', 'SELECT'),
		       has_function_privilege($1, 'stripe_sync.river_future_fn()', 'EXECUTE'),
		       (SELECT relrowsecurity FROM pg_class WHERE oid = 'stripe_sync.river_future'::regclass)`,
		testdb.WorkerRole).Scan(&anonSelects, &publicStillExecutes, &workerSelects, &workerExecutes, &rowSecurity))
	require.False(t, anonSelects)
	require.False(t, publicStillExecutes)
	require.True(t, workerSelects, "the worker role recorded by the first migrate keeps its grants")
	require.True(t, workerExecutes)
	require.True(t, rowSecurity)
}
