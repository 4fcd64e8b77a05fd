-- +goose Up
-- Two lanes and set-based triggers (issue 12).
--
-- Lanes. Live work (a host change, `syncctl enqueue`) is River priority 1;
-- bulk work (backfill, reconcile --fix, an organisation's account move, the
-- resync job) is enqueued below it (package outbox: PriorityLive,
-- PriorityBulk). A live change to an entity whose job still waits in the bulk
-- lane lifts that job to the live lane: it stays the one job for the entity
-- (same row, same unique_key; the insert's ON CONFLICT arbiter is River's
-- unique index, as before), only its priority changes. The lift is a separate
-- UPDATE that runs only when the insert met an existing job, and touches only
-- a waiting job (available, scheduled, retryable, pending) of a lower lane:
-- ON CONFLICT DO UPDATE would lock the conflicting row even when it has
-- nothing to change, so every change to an entity whose job is running would
-- hold that job's row until the host's commit, in River's way when it
-- completes the job.
--
-- Set-based triggers. One statement-level trigger per table and operation,
-- with transition tables, calls one function, stripe_sync_trigger(), which
-- takes the entity type from TG_ARGV[0]: a statement changing N rows records
-- its N changes and inserts its jobs in one statement each, deduplicated on
-- River's unique index, and notifies River once. PostgreSQL allows transition
-- tables only on triggers with a single event and no column list, so the
-- UPDATE triggers fire for every UPDATE statement and the function itself
-- keeps only the rows whose Stripe-visible columns changed (never the
-- worker's write-back of stripe_product_id / stripe_price_id, nor a no-op).
-- Row triggers' WHEN clauses did that before.
--
-- Lock order. Every function here takes stripe_sync_state row locks in one
-- order: events, then tickets, then organisations, and within a type by
-- entity_id. That is the host's own order when it deletes an event with its
-- tickets: measured on PostgreSQL 15, a DELETE of events that cascades holds
-- the events' state rows while it waits for its tickets' (the events'
-- statement trigger fires before the triggers of the statements the
-- cascade ran). stripe_sync_touch_many (outbox's Enqueue, backfill) is
-- re-created here to sort the same way; package jobs takes its locks in
-- this order too (see lockRank there).

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
    ORDER BY CASE t WHEN 'event' THEN 1 WHEN 'ticket' THEN 2 WHEN 'org' THEN 3 ELSE 4 END, t, i
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
$$;
-- +goose StatementEnd

-- stripe_sync_enqueue_many records a change to each of p_ids (entities of
-- p_entity_type: 'event', 'ticket' or 'org') and inserts each one's sync job
-- at p_priority, exactly the row River's client inserts for the same args
-- (kind, args, queue, max_attempts, unique_key = sha256 of River's
-- "&kind=K&args={...}", unique_states = available, pending, retryable,
-- running, scheduled: never completed, or every change within a day of a
-- sync would be dropped). A test in package outbox pins it to River's own
-- insert. A repeated id counts once. It returns how many jobs it inserted.
--
-- The upsert of stripe_sync_state comes first: it takes the entities' row
-- locks (in entity_id order), which serialise the change with a worker
-- finishing the same entity, before the job insert, the order a worker takes
-- them in. ON CONFLICT DO NOTHING on River's unique index keeps a duplicate
-- from raising a unique violation that would roll back the host's write;
-- then, only if some id met a job already there, the lift (see the top of
-- this file). River's producers are notified once, and only when a job row
-- was really inserted.
--
-- PL/pgSQL, not SQL: PL/pgSQL keeps its plans for the session, where a SQL
-- function called from a trigger would be planned again in every statement.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_enqueue_many(p_entity_type text, p_ids uuid[], p_priority integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_kind text := 'stripe_sync_' || p_entity_type;
    v_prefix text := '{"' || CASE p_entity_type
        WHEN 'event' THEN 'event_id' WHEN 'ticket' THEN 'ticket_id' WHEN 'org' THEN 'organisation_id' END || '":"';
    v_changed integer;
    v_inserted integer;
BEGIN
    IF v_prefix IS NULL THEN
        RAISE EXCEPTION 'stripe_sync_enqueue_many: unknown entity type %', p_entity_type;
    END IF;

    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    SELECT p_entity_type, i, 1, clock_timestamp()
    FROM (SELECT DISTINCT i FROM unnest(p_ids) AS u(i) WHERE i IS NOT NULL) AS changed
    ORDER BY i
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    IF v_changed = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO {{schema}}.river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    SELECT a::jsonb, v_kind, 25, '{}'::jsonb, p_priority, 'stripe_sync', 'available', '{}'::varchar(255)[],
           sha256(convert_to('&kind=' || v_kind || '&args=' || a, 'UTF8')),
           241::integer::bit(8)
    FROM (SELECT DISTINCT i, v_prefix || i::text || '"}' AS a FROM unnest(p_ids) AS u(i) WHERE i IS NOT NULL) AS changed
    ORDER BY i
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL
          AND unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(unique_states, state)
    DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;

    IF v_inserted > 0 THEN
        PERFORM pg_notify('{{schema}}.river_insert', '{"queue": "stripe_sync"}');
    END IF;
    IF v_inserted < v_changed THEN
        UPDATE {{schema}}.river_job j
        SET priority = p_priority
        WHERE j.unique_key IN (
                SELECT sha256(convert_to('&kind=' || v_kind || '&args=' || v_prefix || i::text || '"}', 'UTF8'))
                FROM unnest(p_ids) AS u(i))
          AND j.unique_key IS NOT NULL
          AND j.unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(j.unique_states, j.state)
          AND j.state IN ('available', 'scheduled', 'retryable', 'pending')
          AND j.priority > p_priority;
    END IF;
    RETURN v_inserted;
END;
$$;
-- +goose StatementEnd

-- stripe_sync_enqueue is stripe_sync_enqueue_many for one entity in the live
-- lane, kept for callers of its old signature (package jobs re-enqueues an
-- event's tickets through it). p_kind and p_id_field must agree with
-- p_entity_type.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_enqueue(p_kind text, p_entity_type text, p_id_field text, p_entity_id uuid)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    -- (The CASE is in parentheses: PL/pgSQL ends an IF's condition at the
    -- first THEN.)
    IF p_kind IS DISTINCT FROM 'stripe_sync_' || p_entity_type
       OR p_id_field IS DISTINCT FROM (CASE p_entity_type
           WHEN 'event' THEN 'event_id' WHEN 'ticket' THEN 'ticket_id' WHEN 'org' THEN 'organisation_id' END) THEN
        RAISE EXCEPTION 'stripe_sync_enqueue: kind % and field % do not name entity type %', p_kind, p_id_field, p_entity_type;
    END IF;
    PERFORM {{schema}}.stripe_sync_enqueue_many(p_entity_type, ARRAY[p_entity_id], 1);
END;
$$;
-- +goose StatementEnd

-- stripe_sync_trigger is every sync trigger: a statement-level AFTER trigger
-- with transition tables old_rows / new_rows, TG_ARGV[0] the entity type.
-- It collects the ids whose Stripe-visible columns changed (inserted and
-- deleted rows always; for an UPDATE, a row whose id changed counts as its
-- old id deleted and its new id inserted), sorted and each once, and
-- enqueues them in the live lane. PL/pgSQL compiles a trigger function
-- separately for each trigger, so each branch's statement is planned only
-- for the table it names.
--
-- It runs in the host's every write, so it is built for cost (profiled with
-- perf on the single-row UPDATE: plan start-up of each statement dominates
-- what is ours). It writes out stripe_sync_enqueue_many's statements rather
-- than calling it: a call would be a second SECURITY DEFINER function with
-- its own search_path to set and restore, and the ids here are already
-- distinct and sorted, so the statements need no DISTINCT or sort of their
-- own. Keep the two in step; TestTrigger_matchesRiver pins both to River's
-- insert.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_type constant text := TG_ARGV[0];
    v_ids uuid[];
    v_kind text;
    v_prefix text;
    v_changed integer;
    v_inserted integer;
BEGIN
    IF v_type = 'event' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(n.event_id ORDER BY n.event_id) INTO v_ids FROM new_rows n;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(o.event_id ORDER BY o.event_id) INTO v_ids FROM old_rows o;
        ELSE
            SELECT array_agg(coalesce(o.event_id, n.event_id) ORDER BY coalesce(o.event_id, n.event_id)) INTO v_ids
            FROM old_rows o FULL JOIN new_rows n ON n.event_id = o.event_id
            WHERE o.event_id IS NULL OR n.event_id IS NULL
               OR (o.organisation_id, o.parent_event_id, o.title, o.description, o.type, o.slug,
                   o.event_start, o.event_end, o.image_url, o.is_published)
                  IS DISTINCT FROM
                  (n.organisation_id, n.parent_event_id, n.title, n.description, n.type, n.slug,
                   n.event_start, n.event_end, n.image_url, n.is_published);
        END IF;
        v_prefix := '{"event_id":"';
    ELSIF v_type = 'ticket' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(n.id ORDER BY n.id) INTO v_ids FROM new_rows n;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(o.id ORDER BY o.id) INTO v_ids FROM old_rows o;
        ELSE
            SELECT array_agg(coalesce(o.id, n.id) ORDER BY coalesce(o.id, n.id)) INTO v_ids
            FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
            WHERE o.id IS NULL OR n.id IS NULL
               OR (o.event_id, o.name, o.price, o.eligibility_criteria, o.total_capacity)
                  IS DISTINCT FROM
                  (n.event_id, n.name, n.price, n.eligibility_criteria, n.total_capacity);
        END IF;
        v_prefix := '{"ticket_id":"';
    ELSIF v_type = 'org' THEN
        -- Only an account change moves an organisation's catalogue: an
        -- organisation's insert has no events yet, and its delete is held
        -- back by the events' foreign key.
        SELECT array_agg(n.organisation_id ORDER BY n.organisation_id) INTO v_ids
        FROM old_rows o JOIN new_rows n ON n.organisation_id = o.organisation_id
        WHERE o.stripe_onbehalfof IS DISTINCT FROM n.stripe_onbehalfof;
        v_prefix := '{"organisation_id":"';
    ELSE
        RAISE EXCEPTION 'stripe_sync_trigger: unknown entity type %', v_type;
    END IF;
    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    v_kind := 'stripe_sync_' || v_type;

    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    SELECT v_type, i, 1, clock_timestamp() FROM unnest(v_ids) AS u(i)
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
    v_changed := cardinality(v_ids);

    INSERT INTO {{schema}}.river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    SELECT a::jsonb, v_kind, 25, '{}'::jsonb, 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
           sha256(convert_to('&kind=' || v_kind || '&args=' || a, 'UTF8')),
           241::integer::bit(8)
    FROM unnest(v_ids) AS u(i), LATERAL (SELECT v_prefix || i::text || '"}' AS a) AS args
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL
          AND unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(unique_states, state)
    DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;

    IF v_inserted > 0 THEN
        PERFORM pg_notify('{{schema}}.river_insert', '{"queue": "stripe_sync"}');
    END IF;
    IF v_inserted < v_changed THEN
        UPDATE {{schema}}.river_job j
        SET priority = 1
        WHERE j.unique_key IN (
                SELECT sha256(convert_to('&kind=' || v_kind || '&args=' || v_prefix || i::text || '"}', 'UTF8'))
                FROM unnest(v_ids) AS u(i))
          AND j.unique_key IS NOT NULL
          AND j.unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(j.unique_states, j.state)
          AND j.state IN ('available', 'scheduled', 'retryable', 'pending')
          AND j.priority > 1;
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

DROP TRIGGER IF EXISTS stripe_sync_event_insert_delete ON events;
DROP TRIGGER IF EXISTS stripe_sync_event_update ON events;
DROP TRIGGER IF EXISTS stripe_sync_ticket_insert_delete ON event_tickets;
DROP TRIGGER IF EXISTS stripe_sync_ticket_update ON event_tickets;
DROP TRIGGER IF EXISTS stripe_sync_org_update ON organisations;
DROP FUNCTION IF EXISTS {{schema}}.stripe_sync_event_trigger();
DROP FUNCTION IF EXISTS {{schema}}.stripe_sync_ticket_trigger();
DROP FUNCTION IF EXISTS {{schema}}.stripe_sync_org_trigger();

CREATE TRIGGER stripe_sync_event_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('event');
CREATE TRIGGER stripe_sync_event_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('event');
CREATE TRIGGER stripe_sync_event_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('event');

CREATE TRIGGER stripe_sync_ticket_insert AFTER INSERT ON event_tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('ticket');
CREATE TRIGGER stripe_sync_ticket_update AFTER UPDATE ON event_tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('ticket');
CREATE TRIGGER stripe_sync_ticket_delete AFTER DELETE ON event_tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('ticket');

CREATE TRIGGER stripe_sync_org_update AFTER UPDATE ON organisations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.stripe_sync_trigger('org');

-- +goose Down
-- Back to 005's row triggers, with 005's functions.
DROP TRIGGER stripe_sync_org_update ON organisations;
DROP TRIGGER stripe_sync_ticket_delete ON event_tickets;
DROP TRIGGER stripe_sync_ticket_update ON event_tickets;
DROP TRIGGER stripe_sync_ticket_insert ON event_tickets;
DROP TRIGGER stripe_sync_event_delete ON events;
DROP TRIGGER stripe_sync_event_update ON events;
DROP TRIGGER stripe_sync_event_insert ON events;
DROP FUNCTION {{schema}}.stripe_sync_trigger();

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION {{schema}}.stripe_sync_enqueue(p_kind text, p_entity_type text, p_id_field text, p_entity_id uuid)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_args text := '{"' || p_id_field || '":"' || p_entity_id::text || '"}';
BEGIN
    INSERT INTO {{schema}}.stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    VALUES (p_entity_type, p_entity_id, 1, clock_timestamp())
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = {{schema}}.stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
    INSERT INTO {{schema}}.river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    VALUES (v_args::jsonb, p_kind, 25, '{}'::jsonb, 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
            sha256(convert_to('&kind=' || p_kind || '&args=' || v_args, 'UTF8')), 241::integer::bit(8))
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL
          AND {{schema}}.river_job_state_in_bitmask(unique_states, state)
    DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('{{schema}}.river_insert', '{"queue": "stripe_sync"}');
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION {{schema}}.stripe_sync_row_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_old uuid;
    v_new uuid;
BEGIN
    IF TG_ARGV[0] = 'event' THEN
        IF TG_OP <> 'INSERT' THEN v_old := OLD.event_id; END IF;
        IF TG_OP <> 'DELETE' THEN v_new := NEW.event_id; END IF;
    ELSIF TG_ARGV[0] = 'ticket' THEN
        IF TG_OP <> 'INSERT' THEN v_old := OLD.id; END IF;
        IF TG_OP <> 'DELETE' THEN v_new := NEW.id; END IF;
    ELSE
        v_new := NEW.organisation_id;
    END IF;
    PERFORM {{schema}}.stripe_sync_enqueue_many(TG_ARGV[0], ARRAY[v_old, v_new], 1);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER stripe_sync_event_insert_delete AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION {{schema}}.stripe_sync_row_trigger('event');
CREATE TRIGGER stripe_sync_event_update
    AFTER UPDATE OF event_id, organisation_id, parent_event_id, title, description, type, slug,
        event_start, event_end, image_url, is_published ON events
    FOR EACH ROW
    WHEN ((OLD.event_id, OLD.organisation_id, OLD.parent_event_id, OLD.title, OLD.description, OLD.type,
           OLD.slug, OLD.event_start, OLD.event_end, OLD.image_url, OLD.is_published)
          IS DISTINCT FROM
          (NEW.event_id, NEW.organisation_id, NEW.parent_event_id, NEW.title, NEW.description, NEW.type,
           NEW.slug, NEW.event_start, NEW.event_end, NEW.image_url, NEW.is_published))
    EXECUTE FUNCTION {{schema}}.stripe_sync_row_trigger('event');
CREATE TRIGGER stripe_sync_ticket_insert_delete AFTER INSERT OR DELETE ON event_tickets
    FOR EACH ROW EXECUTE FUNCTION {{schema}}.stripe_sync_row_trigger('ticket');
CREATE TRIGGER stripe_sync_ticket_update
    AFTER UPDATE OF id, event_id, name, price, eligibility_criteria, total_capacity ON event_tickets
    FOR EACH ROW
    WHEN ((OLD.id, OLD.event_id, OLD.name, OLD.price, OLD.eligibility_criteria, OLD.total_capacity)
          IS DISTINCT FROM
          (NEW.id, NEW.event_id, NEW.name, NEW.price, NEW.eligibility_criteria, NEW.total_capacity))
    EXECUTE FUNCTION {{schema}}.stripe_sync_row_trigger('ticket');
CREATE TRIGGER stripe_sync_org_update
    AFTER UPDATE OF stripe_onbehalfof ON organisations
    FOR EACH ROW
    WHEN (OLD.stripe_onbehalfof IS DISTINCT FROM NEW.stripe_onbehalfof)
    EXECUTE FUNCTION {{schema}}.stripe_sync_row_trigger('org');
