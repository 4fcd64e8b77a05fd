-- Run at the end of every `syncctl migrate`, after River's migrations and
-- ours, so that objects a future River migration adds are covered too. It
-- leaves privileges on {{schema}} and everything in it to the object's owner
-- and the roles in stripe_sync_worker_role, and nobody else: not PUBLIC (which
-- PostgreSQL grants EXECUTE on every new function and USAGE on every new
-- type), not Supabase's anon, authenticated or service_role (which older
-- projects' default privileges grant everything new). Row security is enabled
-- on every table as a second wall; the owner is not subject to it and the
-- worker roles get a policy that admits them. Host tables are only touched to
-- give the worker roles what the worker reads and writes back.
DO $lockdown$
DECLARE
    s constant text := '{{schema}}';
    workers text[];
    r record;
BEGIN
    SELECT coalesce(array_agg(w.role_name::text ORDER BY w.role_name), '{}')
    INTO workers
    FROM {{schema}}.stripe_sync_worker_role w
    JOIN pg_roles ON pg_roles.rolname = w.role_name;

    -- Everyone's privileges but the owner's and the workers', on the schema
    -- and each object in it. A NULL acl means the type's defaults, which for
    -- functions and types include PUBLIC: acldefault spells them out.
    FOR r IN
        SELECT 'SCHEMA' AS kind, quote_ident(n.nspname) AS name, a.grantee
        FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))) a
        WHERE n.nspname = s AND a.grantee <> n.nspowner
        UNION
        SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
               format('%I.%I', s, c.relname), a.grantee
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace,
        aclexplode(coalesce(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
        WHERE n.nspname = s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND a.grantee <> c.relowner
        UNION
        SELECT CASE WHEN p.prokind = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
               p.oid::regprocedure::text, a.grantee
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace,
        aclexplode(coalesce(p.proacl, acldefault('f'::"char", p.proowner))) a
        WHERE n.nspname = s AND a.grantee <> p.proowner
        UNION
        SELECT 'TYPE', format('%I.%I', s, t.typname), a.grantee
        FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace,
        aclexplode(coalesce(t.typacl, acldefault('T'::"char", t.typowner))) a
        WHERE n.nspname = s AND t.typtype IN ('e', 'd', 'r', 'm') AND a.grantee <> t.typowner
    LOOP
        IF r.grantee = 0 THEN
            EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC', r.kind, r.name);
        ELSIF NOT (pg_get_userbyid(r.grantee)::text = ANY (workers)) THEN
            EXECUTE format('REVOKE ALL ON %s %s FROM %I', r.kind, r.name, pg_get_userbyid(r.grantee));
        END IF;
    END LOOP;

    -- River's own functions come without a fixed search_path (Supabase's
    -- function_search_path_mutable lint). Theirs name nothing outside
    -- pg_catalog, which is searched whatever the setting.
    FOR r IN
        SELECT p.oid::regprocedure AS fn
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = s
          AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proconfig, '{}')) cfg WHERE cfg LIKE 'search\_path=%')
    LOOP
        EXECUTE format('ALTER ROUTINE %s SET search_path = %L', r.fn, '');
    END LOOP;

    FOR r IN
        SELECT c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = s AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', s, r.relname);
        EXECUTE format('DROP POLICY IF EXISTS stripe_sync_worker ON %I.%I', s, r.relname);
        IF cardinality(workers) > 0 THEN
            EXECUTE format('CREATE POLICY stripe_sync_worker ON %I.%I TO %s USING (true) WITH CHECK (true)',
                s, r.relname, (SELECT string_agg(quote_ident(w), ', ') FROM unnest(workers) w));
        END IF;
    END LOOP;

    -- Host tables behind row security (every table the Data API serves, on
    -- Supabase) would show the worker no rows: it gets a policy of its own
    -- there, which its column grants still narrow to reading rows and
    -- writing back the Stripe ids.
    FOR r IN SELECT unnest(ARRAY['organisations'::regclass, 'events'::regclass, 'event_tickets'::regclass]) AS host
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS stripe_sync_worker ON %s', r.host);
        IF cardinality(workers) > 0 THEN
            EXECUTE format('CREATE POLICY stripe_sync_worker ON %s TO %s USING (true) WITH CHECK (true)',
                r.host, (SELECT string_agg(quote_ident(w), ', ') FROM unnest(workers) w));
        END IF;
    END LOOP;

    FOR i IN 1..cardinality(workers) LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, workers[i]);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', s, workers[i]);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', s, workers[i]);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', s, workers[i]);
        FOR r IN
            SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = s AND t.typtype IN ('e', 'd', 'r', 'm')
        LOOP
            EXECUTE format('GRANT USAGE ON TYPE %I.%I TO %I', s, r.typname, workers[i]);
        END LOOP;
        -- The worker reads the host's rows and writes back only the Stripe ids.
        EXECUTE format('GRANT SELECT ON %s, %s, %s TO %I',
            'organisations'::regclass, 'events'::regclass, 'event_tickets'::regclass, workers[i]);
        EXECUTE format('GRANT UPDATE (stripe_product_id) ON %s TO %I', 'events'::regclass, workers[i]);
        EXECUTE format('GRANT UPDATE (stripe_price_id) ON %s TO %I', 'event_tickets'::regclass, workers[i]);
    END LOOP;
END
$lockdown$;
