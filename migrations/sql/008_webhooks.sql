-- +goose Up
-- Drift from Stripe's side (issue 13): the Connect webhook events received,
-- the drift they revealed until a job repairs it, the connected accounts that
-- refuse the platform, and the scheduled reconcile's counts.

-- One row per Stripe event id, written before the event's job is enqueued
-- and in the same transaction, so a redelivered event (Stripe retries until
-- it gets a 2xx, and may deliver an event more than once) acts once. Pruned
-- with the sync log.
CREATE TABLE {{schema}}.stripe_sync_webhook_event (
    event_id text PRIMARY KEY,
    type text NOT NULL,
    account text,
    object_id text,
    -- What the receiver decided: 'enqueued', 'own_write', 'not_ours' or
    -- 'ignored'.
    disposition text NOT NULL,
    -- The event's data.object, mapped to the project's own shape, for the
    -- job that compares it with the database.
    object jsonb,
    created_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_sync_webhook_event_received ON {{schema}}.stripe_sync_webhook_event (received_at);

-- Drift a webhook job found and left for the entity's sync job to repair;
-- stripe_sync_note_repair (below) consumes it.
CREATE TABLE {{schema}}.stripe_sync_drift (
    entity_type text NOT NULL CHECK (entity_type IN ('event', 'ticket')),
    entity_id uuid NOT NULL,
    event_id text NOT NULL,
    differed text NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity_type, entity_id)
);

-- The sync log row of the round that repairs an entity's drift says what it
-- repaired, and the drift record goes with it. A trigger rather than a read
-- by the worker: every round would pay that read's round trip, and the row
-- lives in the round's own transaction either way (a failed round logs
-- 'failed' and leaves the record for the attempt that succeeds).
-- +goose StatementBegin
CREATE FUNCTION {{schema}}.stripe_sync_note_repair()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    v_event_id text;
    v_differed text;
BEGIN
    DELETE FROM {{schema}}.stripe_sync_drift d
    WHERE d.entity_type = NEW.entity_type AND d.entity_id = NEW.entity_id
    RETURNING d.event_id, d.differed INTO v_event_id, v_differed;
    IF FOUND THEN
        -- An unchanged round found the drift repaired already: by a ticket's
        -- job ensuring its Product, or by a change of the row.
        NEW.error_message := CASE WHEN NEW.action = 'unchanged'
            THEN format('drift seen in Stripe event %s was already repaired (%s)', v_event_id, v_differed)
            ELSE format('repaired drift seen in Stripe event %s: %s', v_event_id, v_differed) END;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER stripe_sync_note_repair BEFORE INSERT ON {{schema}}.stripe_sync_log
    FOR EACH ROW WHEN (NEW.status = 'success' AND NEW.entity_type IN ('event', 'ticket'))
    EXECUTE FUNCTION {{schema}}.stripe_sync_note_repair();

-- Connected accounts that refused the platform (403 account_invalid, or
-- account.application.deauthorized): their jobs end skipped until the
-- organisation's job clears the row.
CREATE TABLE {{schema}}.stripe_sync_unreachable_account (
    account text PRIMARY KEY,
    reason text NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
);

-- One row per connected account a scheduled reconcile compared, read by
-- /metrics from any worker process. Pruned with the sync log.
CREATE TABLE {{schema}}.stripe_sync_reconcile_run (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finished_at timestamptz NOT NULL DEFAULT now(),
    account text NOT NULL,
    drift_found integer NOT NULL,
    drift_fixed integer NOT NULL,
    error text
);
CREATE INDEX stripe_sync_reconcile_run_account ON {{schema}}.stripe_sync_reconcile_run (account, finished_at);

-- +goose Down
DROP TRIGGER stripe_sync_note_repair ON {{schema}}.stripe_sync_log;
DROP FUNCTION {{schema}}.stripe_sync_note_repair();
DROP TABLE {{schema}}.stripe_sync_reconcile_run;
DROP TABLE {{schema}}.stripe_sync_unreachable_account;
DROP TABLE {{schema}}.stripe_sync_drift;
DROP TABLE {{schema}}.stripe_sync_webhook_event;
