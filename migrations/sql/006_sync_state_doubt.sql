-- +goose Up

-- in_doubt is set, committed, before a job's first Stripe write of a round
-- and cleared when the round records what Stripe holds. While it is set,
-- connected_account_id / stripe_object_id / fingerprint are what was last
-- known, not necessarily what Stripe holds: a write whose answer was lost (or
-- whose job was killed, or whose commit failed) may have been applied. A job
-- that finds it set reconciles from Stripe's side instead of trusting the
-- fingerprint, and one that finds it clear may create without looking first.
ALTER TABLE stripe_sync_state ADD COLUMN in_doubt boolean NOT NULL DEFAULT false;

-- pushed_version is the wanted_version whose row a job last pushed to Stripe
-- (or found in step). A ticket whose latest change was handled without being
-- pushed (its job was cancelled because its event could not sync) has
-- pushed_version < wanted_version; its event's job re-enqueues it once the
-- event syncs.
ALTER TABLE stripe_sync_state ADD COLUMN pushed_version bigint NOT NULL DEFAULT 0;
UPDATE stripe_sync_state SET pushed_version = handled_version WHERE fingerprint IS NOT NULL;

-- +goose Down
ALTER TABLE stripe_sync_state DROP COLUMN pushed_version;
ALTER TABLE stripe_sync_state DROP COLUMN in_doubt;
