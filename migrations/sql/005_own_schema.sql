-- +goose Up
-- stripe-sync's objects live in a schema of their own ({{schema}}), out of
-- reach of Supabase's Data API. Migrations 002-004 ran with that schema first
-- on search_path, so their tables, view and functions are already in it (a
-- database installed by an earlier version, with everything in public, was
-- moved here by `syncctl migrate` before this file ran, in the same
-- transaction as a first run of it; see package migrations). This file is
-- idempotent for that reason.
--
-- Every function is re-created with an empty search_path and qualified
-- names: Supabase's function_search_path_mutable lint, and a SECURITY
-- DEFINER function must not resolve names through a search_path its caller
-- controls. River's insert channel is "<schema>.river_insert", River's
-- naming for a client configured with that schema.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_touch(p_entity_type text, p_entity_id uuid)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    VALUES (p_entity_type, p_entity_id, 1, clock_timestamp())
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_touch_many(p_types text[], p_ids uuid[])
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = ''
AS $$
    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    SELECT t, i, 1, clock_timestamp()
    FROM (SELECT DISTINCT t, i FROM unnest(p_types, p_ids) AS u(t, i)) AS changed
    ORDER BY t, i
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_enqueue(p_kind text, p_entity_type text, p_id_field text, p_entity_id uuid)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_args text := '{"' || p_id_field || '":"' || p_entity_id::text || '"}';
    v_inserted integer;
BEGIN
    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    VALUES (p_entity_type, p_entity_id, 1, clock_timestamp())
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();

    INSERT INTO {{schema}}.river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    VALUES (
        v_args::jsonb, p_kind, 25, '{}'::jsonb, 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
        sha256(convert_to('&kind=' || p_kind || '&args=' || v_args, 'UTF8')),
        241::integer::bit(8)
    )
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL
          AND unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(unique_states, state)
    DO NOTHING
    RETURNING 1 INTO v_inserted;

    IF FOUND THEN
        PERFORM pg_notify('{{schema}}.river_insert', '{"queue": "stripe_sync"}');
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_event_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM {{schema}}.stripe_sync_enqueue('stripe_sync_event', 'event', 'event_id', OLD.event_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.event_id IS DISTINCT FROM OLD.event_id) THEN
        PERFORM {{schema}}.stripe_sync_enqueue('stripe_sync_event', 'event', 'event_id', NEW.event_id);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_ticket_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM {{schema}}.stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', OLD.id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
        PERFORM {{schema}}.stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_org_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    PERFORM {{schema}}.stripe_sync_enqueue('stripe_sync_org', 'org', 'organisation_id',
        CASE WHEN TG_OP = 'DELETE' THEN OLD.organisation_id ELSE NEW.organisation_id END);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- The rate-limit functions run as their caller (the worker), who owns the
-- rows they lock; they only needed a fixed search_path.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_rate_take(
    buckets text[], per_second float8[], burst int[], max_lead float8[], max_wait float8,
    OUT wait_seconds float8, OUT admitted boolean, OUT read_at timestamptz, OUT queued_seconds float8)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    n int := coalesce(cardinality(buckets), 0);
    tats timestamptz[] := '{}';
    t timestamptz;
    slot timestamptz;
    conform timestamptz;
    lead float8;
BEGIN
    FOR i IN 1..n LOOP
        SELECT r.tat INTO t FROM {{schema}}.stripe_sync_rate_limit r WHERE r.bucket = buckets[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO {{schema}}.stripe_sync_rate_limit (bucket, tat) VALUES (buckets[i], 'epoch')
            ON CONFLICT (bucket) DO NOTHING;
            SELECT r.tat INTO t FROM {{schema}}.stripe_sync_rate_limit r WHERE r.bucket = buckets[i] FOR UPDATE;
        END IF;
        tats[i] := t;
    END LOOP;

    read_at := clock_timestamp();
    queued_seconds := extract(epoch FROM read_at - statement_timestamp());
    slot := read_at;
    FOR i IN 1..n LOOP
        conform := tats[i] - make_interval(secs => (greatest(burst[i], 1) - 1) / per_second[i]);
        lead := extract(epoch FROM conform - read_at);
        IF lead > max_lead[i] THEN
            wait_seconds := lead - max_lead[i];
            admitted := false;
            RETURN;
        END IF;
        slot := greatest(slot, conform);
    END LOOP;

    wait_seconds := extract(epoch FROM slot - read_at);
    admitted := wait_seconds <= max_wait;
    IF NOT admitted THEN
        RETURN;
    END IF;
    FOR i IN 1..n LOOP
        UPDATE {{schema}}.stripe_sync_rate_limit
        SET tat = greatest(tats[i], slot) + make_interval(secs => 1.0 / per_second[i])
        WHERE bucket = buckets[i];
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_rate_penalize(name text, pause_seconds float8, tail_seconds float8)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    from_at timestamptz;
    until_at timestamptz;
    now_at timestamptz;
BEGIN
    INSERT INTO {{schema}}.stripe_sync_rate_limit (bucket, tat) VALUES (name, 'epoch')
    ON CONFLICT (bucket) DO NOTHING;
    SELECT r.paused_from, r.paused_until INTO from_at, until_at
    FROM {{schema}}.stripe_sync_rate_limit r WHERE r.bucket = name FOR UPDATE;

    now_at := clock_timestamp();
    IF until_at IS NULL OR until_at <= now_at THEN
        from_at := now_at;
        until_at := now_at;
    END IF;
    until_at := greatest(until_at, from_at + make_interval(secs => pause_seconds));
    UPDATE {{schema}}.stripe_sync_rate_limit r
    SET paused_from = from_at, paused_until = until_at,
        tat = greatest(r.tat, until_at + make_interval(secs => tail_seconds))
    WHERE r.bucket = name;
END
$$;
-- +goose StatementEnd

-- Supabase's security_definer_view lint: a view runs with its owner's
-- rights unless it is security_invoker, which would let anyone who can
-- select from it read the log past the log's own privileges.
ALTER VIEW {{schema}}.stripe_sync_health SET (security_invoker = true);

-- The roles `syncctl migrate --worker-role` was given, so that a later run
-- without the flag keeps their grants while it revokes everyone else's.
CREATE TABLE IF NOT EXISTS {{schema}}.stripe_sync_worker_role (
    role_name name PRIMARY KEY,
    granted_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
-- The schema move is not undone: a database is never put back within reach
-- of the Data API.
DROP TABLE {{schema}}.stripe_sync_worker_role;
