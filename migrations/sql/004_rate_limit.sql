-- +goose Up
-- The Stripe rate limit every worker process shares: one row per bucket
-- ("global", "acct:<id>"), holding the bucket's theoretical arrival time
-- (GCRA). The row lock serialises processes; each request costs one update.
CREATE TABLE stripe_sync_rate_limit (
    bucket text PRIMARY KEY,
    tat timestamptz NOT NULL
);

-- stripe_sync_rate_take reserves one request's slot in every bucket at the
-- same instant (the latest of the buckets' next free slots), and returns how
-- many seconds the caller must wait before sending it. per_second[i],
-- burst[i] and max_lead[i] describe buckets[i].
--
-- Nothing is reserved, and admitted is false, in two cases; the caller tells
-- them apart by comparing wait_seconds with its max_wait:
--   * the slot lies more than max_wait (the caller's deadline) ahead;
--   * a bucket's next slot lies more than its max_lead ahead: wait_seconds is
--     then when to ask again. A slot reserved in every bucket also moves each
--     bucket's next slot to it, so a backlogged connected account reserving
--     far ahead would hold the global bucket there and slow every other
--     account; max_lead keeps such reservations within the global bucket's
--     burst tolerance, where they delay no one.
--
-- Callers pass buckets in one fixed order ("global" first), so two takes never
-- deadlock. The database's clock is the only clock: workers on several
-- machines need not agree on the time.
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_rate_take(
    buckets text[], per_second float8[], burst int[], max_lead float8[], max_wait float8,
    OUT wait_seconds float8, OUT admitted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(buckets), 0);
    tats timestamptz[] := '{}';
    t timestamptz;
    now_at timestamptz;
    slot timestamptz;
    conform timestamptz;
    lead float8;
BEGIN
    FOR i IN 1..n LOOP
        SELECT r.tat INTO t FROM stripe_sync_rate_limit r WHERE r.bucket = buckets[i] FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO stripe_sync_rate_limit (bucket, tat) VALUES (buckets[i], 'epoch')
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
        -- GCRA: a request conforms at tat - (burst - 1) emission intervals.
        conform := tats[i] - make_interval(secs => (greatest(burst[i], 1) - 1) / per_second[i]);
        lead := extract(epoch FROM conform - now_at);
        IF lead > max_lead[i] THEN
            wait_seconds := lead - max_lead[i];
            admitted := false;
            RETURN;
        END IF;
        slot := greatest(slot, conform);
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
DROP FUNCTION stripe_sync_rate_take(text[], float8[], int[], float8[], float8);
DROP TABLE stripe_sync_rate_limit;
