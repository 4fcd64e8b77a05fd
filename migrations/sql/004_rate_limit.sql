-- +goose Up
-- The Stripe rate limit every worker process shares: one row per bucket
-- ("global", "acct:<id>"), holding the bucket's theoretical arrival time
-- (GCRA). The row lock serialises processes; each request costs one update.
-- paused_from and paused_until are the latest pause Stripe asked for with a
-- 429 (stripe_sync_rate_penalize); NULL until the first.
CREATE TABLE stripe_sync_rate_limit (
    bucket text PRIMARY KEY,
    tat timestamptz NOT NULL,
    paused_from timestamptz,
    paused_until timestamptz
);

-- stripe_sync_rate_take reserves one request's slot in every bucket at the
-- same instant (the latest of the buckets' next free slots), and returns how
-- many seconds after read_at (its reading of the clock) the caller must send
-- it. per_second[i], burst[i] and max_lead[i] describe buckets[i].
-- queued_seconds is how long after the statement arrived the clock was read
-- (waiting for the bucket locks): with it, the caller can tell when read_at
-- was on its own clock, and sleep until the slot however late the reply
-- reaches it.
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
    OUT wait_seconds float8, OUT admitted boolean, OUT read_at timestamptz, OUT queued_seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(buckets), 0);
    tats timestamptz[] := '{}';
    t timestamptz;
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
    read_at := clock_timestamp();
    queued_seconds := extract(epoch FROM read_at - statement_timestamp());
    slot := read_at;
    FOR i IN 1..n LOOP
        -- GCRA: a request conforms at tat - (burst - 1) emission intervals.
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
        UPDATE stripe_sync_rate_limit
        SET tat = greatest(tats[i], slot) + make_interval(secs => 1.0 / per_second[i])
        WHERE bucket = buckets[i];
    END LOOP;
END
$$;
-- +goose StatementEnd

-- stripe_sync_rate_penalize holds bucket for pause_seconds after Stripe
-- answered 429: no slot is reserved before the pause ends, and tat lands
-- tail_seconds past its end (the caller's (burst - 1) emission intervals) so
-- the first request after it goes alone. Slots reserved before the 429 keep
-- their times: they are paced, and Stripe's window drains as they go.
--
-- A 429 that arrives while a pause is in force was sent by a request admitted
-- before the pause began (none is admitted during it), so it says nothing new:
-- it ends the pause no later than the pause's start plus its own
-- pause_seconds, rather than restarting the pause from its own arrival. Else a
-- single overload would pause the bucket once per refused request already on
-- its way.
-- +goose StatementBegin
CREATE FUNCTION stripe_sync_rate_penalize(name text, pause_seconds float8, tail_seconds float8)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    from_at timestamptz;
    until_at timestamptz;
    now_at timestamptz;
BEGIN
    INSERT INTO stripe_sync_rate_limit (bucket, tat) VALUES (name, 'epoch')
    ON CONFLICT (bucket) DO NOTHING;
    SELECT r.paused_from, r.paused_until INTO from_at, until_at
    FROM stripe_sync_rate_limit r WHERE r.bucket = name FOR UPDATE;

    now_at := clock_timestamp();
    IF until_at IS NULL OR until_at <= now_at THEN
        from_at := now_at;
        until_at := now_at;
    END IF;
    until_at := greatest(until_at, from_at + make_interval(secs => pause_seconds));
    UPDATE stripe_sync_rate_limit r
    SET paused_from = from_at, paused_until = until_at,
        tat = greatest(r.tat, until_at + make_interval(secs => tail_seconds))
    WHERE r.bucket = name;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION stripe_sync_rate_penalize(text, float8, float8);
DROP FUNCTION stripe_sync_rate_take(text[], float8[], int[], float8[], float8);
DROP TABLE stripe_sync_rate_limit;
