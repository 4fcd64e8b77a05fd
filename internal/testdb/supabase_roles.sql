-- Supabase's API roles, cluster-wide like every role. The advisory lock
-- serialises test binaries building templates at the same time.
SELECT pg_advisory_xact_lock(727100001);
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
    -- The least-privilege role the tests run workers as.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stripe_sync_worker') THEN
        CREATE ROLE stripe_sync_worker LOGIN;
    END IF;
END
$$;
-- PostgREST logs in as authenticator and switches to the request's role.
GRANT anon, authenticated, service_role TO authenticator;
-- The role pgtestdb gives tests may SET ROLE to each, to try what they can reach.
GRANT anon, authenticated, service_role, stripe_sync_worker TO pgtdbuser;
