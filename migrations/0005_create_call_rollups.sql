-- Daily rollups of llm_calls for the dashboard: one row per day and
-- dimension combination, kept current by triggers, so a month of a million
-- calls is read from a few thousand rows. Latency and time to first token
-- are kept as histograms (bucket k holds values in [1.1^k, 1.1^(k+1)) ms,
-- bucket 0 also 0 ms), so percentiles are read within 5%.
-- Feedback is a dimension too: a verdict moves the generation calls of its
-- request (every attempt) from `none` to `up` or `down`.

CREATE FUNCTION triage_latency_bucket(ms INTEGER) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(139, greatest(0, floor(ln(greatest(ms, 1)) / ln(1.1))::INTEGER))
$$;

-- An array of 140 zeros with `n` at bucket `k` (0-based).
CREATE FUNCTION triage_hist_n(k INTEGER, n BIGINT) RETURNS BIGINT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_fill(0::BIGINT, ARRAY[k]) || n || array_fill(0::BIGINT, ARRAY[139 - k])
$$;

-- Element-wise sum; NULL counts as zeros.
CREATE FUNCTION triage_hist_add(a BIGINT[], b BIGINT[]) RETURNS BIGINT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE
        (SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i))
    END
$$;

CREATE AGGREGATE triage_hist_sum(BIGINT[]) (SFUNC = triage_hist_add, STYPE = BIGINT[]);

CREATE TABLE call_rollups (
    day            DATE NOT NULL,
    kind           TEXT NOT NULL,
    tier           TEXT NOT NULL,
    complexity     TEXT NOT NULL,
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    cache_status   TEXT NOT NULL,
    status         TEXT NOT NULL,
    -- 'none', 'up' or 'down': the verdict on the answer this call gave
    feedback       TEXT NOT NULL,
    calls          BIGINT NOT NULL,
    -- first attempts: one per request
    requests       BIGINT NOT NULL,
    cost_micros    BIGINT NOT NULL,
    saved_micros   BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    latency_hist   BIGINT[] NOT NULL,
    ttft_hist      BIGINT[] NOT NULL,
    PRIMARY KEY (day, kind, tier, complexity, model, provider, cache_status, status, feedback)
);

-- The statement that adds calls to the rollups (`sign` -1 takes them out
-- again). `source` is a query yielding llm_calls' columns plus `feedback`.
-- Callers EXECUTE it themselves: a trigger's transition table is visible
-- only to the trigger function's own statements.
CREATE FUNCTION triage_rollup_sql(source TEXT, sign INTEGER) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
    WITH r AS (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, kind, coalesce(tier, '') AS tier,
            coalesce(complexity, '') AS complexity, model, provider, cache_status, status, feedback,
            attempt, cost_micros, saved_micros, input_tokens, output_tokens, latency_ms, ttft_ms
        FROM (%1$s) s
    ), g AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback,
            %2$s * count(*) AS calls, %2$s * count(*) FILTER (WHERE attempt <= 1) AS requests,
            %2$s * sum(cost_micros) AS cost_micros, %2$s * sum(saved_micros) AS saved_micros,
            %2$s * sum(input_tokens) AS input_tokens, %2$s * sum(output_tokens) AS output_tokens
        FROM r GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ), lat AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback,
            triage_hist_sum(triage_hist_n(k, %2$s * n)) AS hist
        FROM (SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback,
                triage_latency_bucket(latency_ms) AS k, count(*) AS n
              FROM r GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) b
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ), ttft AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback,
            triage_hist_sum(triage_hist_n(k, %2$s * n)) AS hist
        FROM (SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback,
                triage_latency_bucket(ttft_ms) AS k, count(*) AS n
              FROM r WHERE ttft_ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) b
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    )
    INSERT INTO call_rollups AS c (day, kind, tier, complexity, model, provider, cache_status, status, feedback,
        calls, requests, cost_micros, saved_micros, input_tokens, output_tokens, latency_hist, ttft_hist)
    SELECT g.day, g.kind, g.tier, g.complexity, g.model, g.provider, g.cache_status, g.status, g.feedback,
        g.calls, g.requests, g.cost_micros, g.saved_micros, g.input_tokens, g.output_tokens,
        lat.hist, coalesce(ttft.hist, array_fill(0::BIGINT, ARRAY[140]))
    FROM g
    JOIN lat USING (day, kind, tier, complexity, model, provider, cache_status, status, feedback)
    LEFT JOIN ttft USING (day, kind, tier, complexity, model, provider, cache_status, status, feedback)
    ON CONFLICT (day, kind, tier, complexity, model, provider, cache_status, status, feedback) DO UPDATE SET
        calls = c.calls + EXCLUDED.calls,
        requests = c.requests + EXCLUDED.requests,
        cost_micros = c.cost_micros + EXCLUDED.cost_micros,
        saved_micros = c.saved_micros + EXCLUDED.saved_micros,
        input_tokens = c.input_tokens + EXCLUDED.input_tokens,
        output_tokens = c.output_tokens + EXCLUDED.output_tokens,
        latency_hist = triage_hist_add(c.latency_hist, EXCLUDED.latency_hist),
        ttft_hist = triage_hist_add(c.ttft_hist, EXCLUDED.ttft_hist)
    $q$, source, sign)
$f$;

-- The verdict a call's answer got, as a rollup dimension.
CREATE FUNCTION triage_verdict(rating SMALLINT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE rating WHEN 1 THEN 'up' WHEN -1 THEN 'down' ELSE 'none' END
$$;

-- New calls: added once per statement (the call log writes in batches).
CREATE FUNCTION triage_rollup_calls() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE triage_rollup_sql($q$
        SELECT n.*, triage_verdict(f.rating) AS feedback FROM new_calls n
        LEFT JOIN feedback f ON f.request_id = n.request_id AND n.kind = 'generate'
    $q$, 1);
    RETURN NULL;
END $f$;

CREATE TRIGGER llm_calls_rollup AFTER INSERT ON llm_calls
    REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION triage_rollup_calls();

-- Deleted calls (`demo-seed --replace`, retention jobs) leave the rollups too.
CREATE FUNCTION triage_rollup_deleted_calls() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
BEGIN
    EXECUTE triage_rollup_sql($q$
        SELECT o.*, triage_verdict(f.rating) AS feedback FROM old_calls o
        LEFT JOIN feedback f ON f.request_id = o.request_id AND o.kind = 'generate'
    $q$, -1);
    RETURN NULL;
END $f$;

CREATE TRIGGER llm_calls_rollup_delete AFTER DELETE ON llm_calls
    REFERENCING OLD TABLE AS old_calls FOR EACH STATEMENT EXECUTE FUNCTION triage_rollup_deleted_calls();

-- A verdict given, changed or removed moves its answering call between
-- feedback groups.
CREATE FUNCTION triage_rollup_feedback() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
DECLARE
    old_verdict TEXT := CASE WHEN TG_OP = 'INSERT' THEN 'none' ELSE triage_verdict(OLD.rating) END;
    new_verdict TEXT := CASE WHEN TG_OP = 'DELETE' THEN 'none' ELSE triage_verdict(NEW.rating) END;
    request UUID := CASE WHEN TG_OP = 'DELETE' THEN OLD.request_id ELSE NEW.request_id END;
    source TEXT := $q$
        SELECT c.*, %L::text AS feedback FROM llm_calls c
        WHERE c.request_id = %L AND c.kind = 'generate'
    $q$;
BEGIN
    IF old_verdict = new_verdict OR request IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE triage_rollup_sql(format(source, old_verdict, request), -1);
    EXECUTE triage_rollup_sql(format(source, new_verdict, request), 1);
    RETURN NULL;
END $f$;

CREATE TRIGGER feedback_rollup AFTER INSERT OR UPDATE OF rating OR DELETE ON feedback
    FOR EACH ROW EXECUTE FUNCTION triage_rollup_feedback();

-- Calls written before this migration.
DO $d$ BEGIN
    EXECUTE triage_rollup_sql($q$
        SELECT c.*, triage_verdict(f.rating) AS feedback FROM llm_calls c
        LEFT JOIN feedback f ON f.request_id = c.request_id AND c.kind = 'generate'
    $q$, 1);
END $d$;
