-- +goose Up

-- stripe_sync_touch records that an entity changed, in the changing
-- transaction. It takes the entity's row lock in stripe_sync_state, which is
-- what serialises the change with a worker finishing the same entity: the
-- worker compares wanted_version with the version it read, under the same
-- lock, in the transaction that completes its job (see package jobs).
-- stripe_sync_touch_many and stripe_sync_enqueue write the same upsert; keep
-- the three in step.
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_touch(p_entity_type text, p_entity_id uuid)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    INSERT INTO stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    VALUES (p_entity_type, p_entity_id, 1, clock_timestamp())
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
$$;
-- +goose StatementEnd

-- stripe_sync_touch_many is stripe_sync_touch for a set of entities in one
-- statement (package outbox's Enqueue and backfill). DISTINCT records a
-- repeated entity once, as one change, instead of failing with "ON CONFLICT
-- DO UPDATE command cannot affect row a second time"; the ORDER BY takes the
-- row locks in one order, so two overlapping calls wait instead of
-- deadlocking.
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_touch_many(p_types text[], p_ids uuid[])
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    INSERT INTO stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    SELECT t, i, 1, clock_timestamp()
    FROM (SELECT DISTINCT t, i FROM unnest(p_types, p_ids) AS u(t, i)) AS changed
    ORDER BY t, i
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();
$$;
-- +goose StatementEnd

-- stripe_sync_enqueue records the change and inserts the entity's sync job,
-- inside the caller's transaction (the outbox). It writes exactly the row
-- River's client writes for the same args (see package outbox): kind, args,
-- queue, priority, max_attempts, the unique_key (sha256 of River's
-- "&kind=K&args={...}" string) and the unique_states bitmask (available,
-- pending, retryable, running, scheduled; never completed, or every change
-- within a day of a sync would be dropped). A test pins both to River's own
-- computation. ON CONFLICT DO NOTHING keeps a duplicate from raising a unique
-- violation that would roll back the host's own write.
--
-- It runs on every trigger firing, so it is built for cost. It writes out
-- stripe_sync_touch's upsert instead of calling it: a LANGUAGE sql function
-- called from PL/pgSQL is parsed and planned again in every transaction,
-- while PL/pgSQL keeps its own plans for the session. The upsert comes
-- first, taking the entity's lock in stripe_sync_state before the job insert,
-- the order a worker finishing the entity takes them in. pg_notify, which
-- wakes River's producers at once instead of at their next poll, is sent only
-- when a job row was really inserted: a burst of updates to an entity whose
-- job already waits or runs sends nothing. (PostgreSQL also folds identical
-- notifications into one per transaction.)
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_enqueue(p_kind text, p_entity_type text, p_id_field text, p_entity_id uuid)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_args text := '{"' || p_id_field || '":"' || p_entity_id::text || '"}';
    v_inserted integer;
BEGIN
    INSERT INTO stripe_sync_state (entity_type, entity_id, wanted_version, wanted_at)
    VALUES (p_entity_type, p_entity_id, 1, clock_timestamp())
    ON CONFLICT (entity_type, entity_id)
    DO UPDATE SET wanted_version = stripe_sync_state.wanted_version + 1, wanted_at = clock_timestamp();

    INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    VALUES (
        v_args::jsonb, p_kind, 25, '{}'::jsonb, 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
        sha256(convert_to('&kind=' || p_kind || '&args=' || v_args, 'UTF8')),
        241::integer::bit(8)
    )
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL
          AND unique_states IS NOT NULL
          AND river_job_state_in_bitmask(unique_states, state)
    DO NOTHING
    RETURNING 1 INTO v_inserted;

    IF FOUND THEN
        PERFORM pg_notify('public.river_insert', '{"queue": "stripe_sync"}');
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stripe_sync_event_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM stripe_sync_enqueue('stripe_sync_event', 'event', 'event_id', OLD.event_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.event_id IS DISTINCT FROM OLD.event_id) THEN
        PERFORM stripe_sync_enqueue('stripe_sync_event', 'event', 'event_id', NEW.event_id);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stripe_sync_ticket_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', OLD.id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
        PERFORM stripe_sync_enqueue('stripe_sync_ticket', 'ticket', 'ticket_id', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION stripe_sync_org_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM stripe_sync_enqueue('stripe_sync_org', 'org', 'organisation_id',
        CASE WHEN TG_OP = 'DELETE' THEN OLD.organisation_id ELSE NEW.organisation_id END);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- Only Stripe-visible columns fire the UPDATE triggers, and only when a value
-- really changed: the worker's write-back of stripe_product_id and
-- stripe_price_id must never enqueue another job.
CREATE TRIGGER stripe_sync_event_insert_delete
    AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION stripe_sync_event_trigger();
CREATE TRIGGER stripe_sync_event_update
    AFTER UPDATE OF event_id, organisation_id, parent_event_id, title, description, type, slug,
        event_start, event_end, image_url, is_published ON events
    FOR EACH ROW
    WHEN ((OLD.event_id, OLD.organisation_id, OLD.parent_event_id, OLD.title, OLD.description, OLD.type,
           OLD.slug, OLD.event_start, OLD.event_end, OLD.image_url, OLD.is_published)
          IS DISTINCT FROM
          (NEW.event_id, NEW.organisation_id, NEW.parent_event_id, NEW.title, NEW.description, NEW.type,
           NEW.slug, NEW.event_start, NEW.event_end, NEW.image_url, NEW.is_published))
    EXECUTE FUNCTION stripe_sync_event_trigger();

CREATE TRIGGER stripe_sync_ticket_insert_delete
    AFTER INSERT OR DELETE ON event_tickets
    FOR EACH ROW EXECUTE FUNCTION stripe_sync_ticket_trigger();
CREATE TRIGGER stripe_sync_ticket_update
    AFTER UPDATE OF id, event_id, name, price, eligibility_criteria, total_capacity ON event_tickets
    FOR EACH ROW
    WHEN ((OLD.id, OLD.event_id, OLD.name, OLD.price, OLD.eligibility_criteria, OLD.total_capacity)
          IS DISTINCT FROM
          (NEW.id, NEW.event_id, NEW.name, NEW.price, NEW.eligibility_criteria, NEW.total_capacity))
    EXECUTE FUNCTION stripe_sync_ticket_trigger();

CREATE TRIGGER stripe_sync_org_update
    AFTER UPDATE OF stripe_onbehalfof ON organisations
    FOR EACH ROW
    WHEN (OLD.stripe_onbehalfof IS DISTINCT FROM NEW.stripe_onbehalfof)
    EXECUTE FUNCTION stripe_sync_org_trigger();

-- +goose Down
DROP TRIGGER stripe_sync_org_update ON organisations;
DROP TRIGGER stripe_sync_ticket_update ON event_tickets;
DROP TRIGGER stripe_sync_ticket_insert_delete ON event_tickets;
DROP TRIGGER stripe_sync_event_update ON events;
DROP TRIGGER stripe_sync_event_insert_delete ON events;
DROP FUNCTION stripe_sync_org_trigger();
DROP FUNCTION stripe_sync_ticket_trigger();
DROP FUNCTION stripe_sync_event_trigger();
DROP FUNCTION stripe_sync_enqueue(text, text, text, uuid);
DROP FUNCTION stripe_sync_touch_many(text[], uuid[]);
DROP FUNCTION stripe_sync_touch(text, uuid);
