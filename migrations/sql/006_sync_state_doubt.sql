-- +goose Up

-- in_doubt is set, committed, before a job's first Stripe write of a round
-- and cleared when the round records what Stripe holds. While it is set,
-- connected_account_id / stripe_object_id / fingerprint are what was last
-- known, not necessarily what Stripe holds: a write whose answer was lost (or
-- whose job was killed, or whose commit failed) may have been applied. A job
-- that finds it set reconciles from Stripe's side instead of trusting the
-- fingerprint, and one that finds it clear may create without looking first.
ALTER TABLE {{schema}}.stripe_sync_state ADD COLUMN in_doubt boolean NOT NULL DEFAULT false;

-- pushed_version is the wanted_version whose row a job last pushed to Stripe
-- (or found in step). A ticket whose latest change was handled without being
-- pushed (its job was cancelled because its event could not sync) has
-- pushed_version < wanted_version; its event's job re-enqueues it once the
-- event syncs.
ALTER TABLE {{schema}}.stripe_sync_state ADD COLUMN pushed_version bigint NOT NULL DEFAULT 0;
UPDATE {{schema}}.stripe_sync_state SET pushed_version = handled_version WHERE fingerprint IS NOT NULL;

-- key_generation is folded into the Idempotency-Key scope of the entity's
-- writes. Stripe stores a 500 raised while a request executed under its key
-- and replays it to every later request with that key, so a round that got a
-- 5xx (or a replayed one) moves it on, and the next attempt sends new keys.
-- A failure with no answer leaves it, so the retry sends the same keys and
-- Stripe replays what it applied.
ALTER TABLE {{schema}}.stripe_sync_state ADD COLUMN key_generation integer NOT NULL DEFAULT 0;

-- An event deleted before its first sync may carry a stripe_product_id from
-- the system this project replaced; once the row is gone nothing else says
-- where that Product is. This records it (and the organisation's account) in
-- the event's state row, which the event's own trigger has just locked and
-- bumped (triggers fire in name order), for the delete job to archive. It
-- writes nothing for an event the sync already recorded. Empty search_path
-- and qualified names, as in 005.
-- +goose StatementBegin
CREATE FUNCTION {{schema}}.stripe_sync_event_legacy_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    UPDATE {{schema}}.stripe_sync_state s
    SET stripe_object_id = OLD.stripe_product_id,
        accounts = CASE WHEN o.stripe_onbehalfof = ANY (s.accounts) THEN s.accounts
                        ELSE s.accounts || o.stripe_onbehalfof END
    FROM public.organisations o
    WHERE s.entity_type = 'event' AND s.entity_id = OLD.event_id AND s.stripe_object_id IS NULL
      AND o.organisation_id = OLD.organisation_id AND coalesce(o.stripe_onbehalfof, '') <> '';
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER stripe_sync_event_legacy_delete
    AFTER DELETE ON public.events
    FOR EACH ROW
    WHEN (OLD.stripe_product_id IS NOT NULL)
    EXECUTE FUNCTION {{schema}}.stripe_sync_event_legacy_trigger();

-- +goose Down
DROP TRIGGER stripe_sync_event_legacy_delete ON public.events;
DROP FUNCTION {{schema}}.stripe_sync_event_legacy_trigger();
ALTER TABLE {{schema}}.stripe_sync_state DROP COLUMN key_generation;
ALTER TABLE {{schema}}.stripe_sync_state DROP COLUMN pushed_version;
ALTER TABLE {{schema}}.stripe_sync_state DROP COLUMN in_doubt;
