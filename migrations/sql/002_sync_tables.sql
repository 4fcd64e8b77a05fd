-- +goose Up
-- One row per attempt of a sync job, the seed's columns plus the job's
-- identity and timing. stripe_object_id and connected_account_id are nullable
-- because a skipped attempt (no connected account) has neither.
CREATE TABLE stripe_sync_log (
    id uuid DEFAULT gen_random_uuid() PRIMARY KEY,
    entity_type text NOT NULL,
    entity_id uuid NOT NULL,
    stripe_object_id text,
    connected_account_id text,
    action text NOT NULL,
    status text NOT NULL CHECK (status IN ('success', 'failed', 'skipped')),
    error_message text,
    synced_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    job_id bigint,
    attempt integer,
    duration_ms integer
);
CREATE INDEX idx_stripe_sync_log_entity ON stripe_sync_log (entity_type, entity_id);
CREATE INDEX idx_stripe_sync_log_status ON stripe_sync_log (status, created_at);

-- What was last pushed to Stripe for each entity, and the versions that let a
-- job notice a change committed while it ran: stripe_sync_touch bumps
-- wanted_version in the changing transaction; a job that finishes (synced,
-- skipped, cancelled or out of attempts) records the version it acted on as
-- handled_version. wanted > handled with no job waiting means a change slipped
-- past a job's end; the resync job re-enqueues those.
CREATE TABLE stripe_sync_state (
    entity_type text NOT NULL CHECK (entity_type IN ('event', 'ticket', 'org')),
    entity_id uuid NOT NULL,
    wanted_version bigint NOT NULL DEFAULT 0,
    -- When the latest change was recorded (clock time, not the changing
    -- transaction's start), for the resync job's "did the last job start
    -- before this change?" test.
    wanted_at timestamptz,
    handled_version bigint NOT NULL DEFAULT 0,
    -- The event a ticket's Price hangs off, so deleting an event can find
    -- every Price created for it after the ticket rows are gone.
    parent_id uuid,
    connected_account_id text,
    stripe_object_id text,
    fingerprint text,
    synced_at timestamptz,
    -- Every account a job was about to write this entity's objects to and
    -- that is not yet known clean: recorded (committed) before the write, so
    -- an object whose create response was lost, or whose job was killed, is
    -- still found and archived when the row is deleted or moves account.
    accounts text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (entity_type, entity_id)
);
CREATE INDEX idx_stripe_sync_state_parent ON stripe_sync_state (parent_id) WHERE parent_id IS NOT NULL;

CREATE VIEW stripe_sync_health AS
SELECT
    entity_type,
    count(*) FILTER (WHERE status = 'success' AND synced_at > now() - interval '1 day') AS success_24h,
    count(*) FILTER (WHERE status = 'failed' AND synced_at > now() - interval '1 day') AS failed_24h,
    count(*) FILTER (WHERE status = 'skipped' AND synced_at > now() - interval '1 day') AS skipped_24h,
    max(synced_at) AS last_sync
FROM stripe_sync_log
GROUP BY entity_type;

-- +goose Down
DROP VIEW stripe_sync_health;
DROP TABLE stripe_sync_state;
DROP TABLE stripe_sync_log;
