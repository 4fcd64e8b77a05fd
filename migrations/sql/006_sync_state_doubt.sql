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

-- key_generation is folded into the Idempotency-Key scope of the entity's
-- writes. Stripe stores a 500 raised while a request executed under its key
-- and replays it to every later request with that key, so a round that got a
-- 5xx (or a replayed one) moves it on, and the next attempt sends new keys.
-- A failure with no answer leaves it, so the retry sends the same keys and
-- Stripe replays what it applied.
ALTER TABLE stripe_sync_state ADD COLUMN key_generation integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE stripe_sync_state DROP COLUMN key_generation;
ALTER TABLE stripe_sync_state DROP COLUMN pushed_version;
ALTER TABLE stripe_sync_state DROP COLUMN in_doubt;
