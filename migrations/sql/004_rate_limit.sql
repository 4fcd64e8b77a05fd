-- +goose Up
-- The Stripe rate limit every worker process shares: one row per bucket
-- ("global", "acct:<id>"), holding the bucket's theoretical arrival time
-- (GCRA). The row lock serialises processes; each request costs one update.
CREATE TABLE stripe_sync_rate_limit (
    bucket text PRIMARY KEY,
    tat timestamptz NOT NULL
);

-- stripe_sync_rate_take reserves one request's slot in every bucket at the
-- same instant, and returns how many seconds the caller must wait before
-- sending it. per_second[i] and burst[i] describe buckets[i]. When the wait
-- would exceed max_wait (the caller's deadline) nothing is reserved and
-- admitted is false. Callers pass buckets in one fixed order ("global"
-- first), so two takes never deadlock. The database's clock is the only
-- clock: workers on several machines need not agree on the time.
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_rate_take(
    buckets text[], per_second float8[], burst int[], max_wait float8,
    OUT wait_seconds float8, OUT admitted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(buckets), 0);
    tats timestamptz[] := '{}';
    t timestamptz;
    now_at timestamptz;
    slot timestamptz;
    emission interval;
BEGIN
    FOR i IN 1..n LOOP
        SELECT r.tat INTO t FROM stripe_sync_rate_limit r WHERE r.bucket = buckets[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO stripe_sync_rate_limit (bucket, tat) VALUES (buckets[i], '-infinity')
            ON CONFLICT (bucket) DO NOTHING;
            SELECT r.tat INTO t FROM stripe_sync_rate_limit r WHERE r.bucket = buckets[i] FOR UPDATE;
        END IF;
        tats[i] := t;
    END LOOP;

    -- Read the clock only once every lock is held: time spent queueing for a
    -- lock must not count as time the bucket refilled.
    now_at := clock_timestamp();
    slot := now_at;
    FOR i IN 1..n LOOP
        emission := make_interval(secs => 1.0 / per_second[i]);
        -- GCRA: a request conforms at tat - (burst - 1) * emission.
        slot := greatest(slot, tats[i] - (greatest(burst[i], 1) - 1) * emission);
    END LOOP;

    wait_seconds := extract(epoch FROM slot - now_at);
    admitted := wait_seconds <= max_wait;
    IF NOT admitted THEN
        RETURN;
    END IF;
    FOR i IN 1..n LOOP
        UPDATE stripe_sync_rate_limit
        SET tat = greatest(tats[i], slot) + make_interval(secs => 1.0 / per_second[i])
        WHERE bucket = buckets[i];
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stripe_sync_rate_take(text[], float8[], int[], float8);
DROP TABLE stripe_sync_rate_limit;
