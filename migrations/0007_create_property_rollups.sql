-- Rollups per custom property, for the keys an admin filters on often
-- (`triage rollups add-property plan`): the same daily rows as
-- call_rollups, split further by one property's value. Only registered
-- keys are rolled up, so a high-cardinality property (an order id) does
-- not multiply the rows; filters on other keys read the calls (GIN index).

CREATE TABLE rollup_property_keys (
    key        TEXT PRIMARY KEY,
    added_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE property_rollups (
    prop_key       TEXT NOT NULL,
    prop_value     TEXT NOT NULL,
    day            DATE NOT NULL,
    kind           TEXT NOT NULL,
    tier           TEXT NOT NULL,
    complexity     TEXT NOT NULL,
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    cache_status   TEXT NOT NULL,
    status         TEXT NOT NULL,
    feedback       TEXT NOT NULL,
    calls          BIGINT NOT NULL,
    requests       BIGINT NOT NULL,
    cost_micros    BIGINT NOT NULL,
    saved_micros   BIGINT NOT NULL,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    latency_hist   BIGINT[] NOT NULL,
    ttft_hist      BIGINT[] NOT NULL,
    PRIMARY KEY (prop_key, prop_value, day, kind, tier, complexity, model, provider, cache_status, status, feedback)
);

-- The rollup statement of 0005, generalised over the target table and
-- extra leading dimensions (`dims`: '' or ', prop_key, prop_value').
CREATE FUNCTION triage_rollup_into(source TEXT, sign INTEGER, target TEXT, dims TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
    WITH r AS (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, kind, coalesce(tier, '') AS tier,
            coalesce(complexity, '') AS complexity, model, provider, cache_status, status, feedback,
            attempt, cost_micros, saved_micros, input_tokens, output_tokens, latency_ms, ttft_ms %4$s
        FROM (%1$s) s
    ), g AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
            %2$s * count(*) AS calls, %2$s * count(*) FILTER (WHERE attempt <= 1) AS requests,
            %2$s * sum(cost_micros) AS cost_micros, %2$s * sum(saved_micros) AS saved_micros,
            %2$s * sum(input_tokens) AS input_tokens, %2$s * sum(output_tokens) AS output_tokens
        FROM r GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s
    ), lat AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
            triage_hist_sum(triage_hist_n(k, %2$s * n)) AS hist
        FROM (SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
                triage_latency_bucket(latency_ms) AS k, count(*) AS n
              FROM r GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s, k) b
        GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s
    ), ttft AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
            triage_hist_sum(triage_hist_n(k, %2$s * n)) AS hist
        FROM (SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
                triage_latency_bucket(ttft_ms) AS k, count(*) AS n
              FROM r WHERE ttft_ms IS NOT NULL
              GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s, k) b
        GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s
    )
    INSERT INTO %3$I AS c (day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
        calls, requests, cost_micros, saved_micros, input_tokens, output_tokens, latency_hist, ttft_hist)
    SELECT g.day, g.kind, g.tier, g.complexity, g.model, g.provider, g.cache_status, g.status, g.feedback
        %5$s,
        g.calls, g.requests, g.cost_micros, g.saved_micros, g.input_tokens, g.output_tokens,
        lat.hist, coalesce(ttft.hist, array_fill(0::BIGINT, ARRAY[140]))
    FROM g
    JOIN lat USING (day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s)
    LEFT JOIN ttft USING (day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s)
    ON CONFLICT (%6$s day, kind, tier, complexity, model, provider, cache_status, status, feedback) DO UPDATE SET
        calls = c.calls + EXCLUDED.calls,
        requests = c.requests + EXCLUDED.requests,
        cost_micros = c.cost_micros + EXCLUDED.cost_micros,
        saved_micros = c.saved_micros + EXCLUDED.saved_micros,
        input_tokens = c.input_tokens + EXCLUDED.input_tokens,
        output_tokens = c.output_tokens + EXCLUDED.output_tokens,
        latency_hist = triage_hist_add(c.latency_hist, EXCLUDED.latency_hist),
        ttft_hist = triage_hist_add(c.ttft_hist, EXCLUDED.ttft_hist)
    $q$, source, sign, target, dims,
        -- the extra dimensions qualified for the SELECT from g
        replace(dims, ', ', ', g.'),
        -- and first in the conflict target, as in the primary key
        CASE WHEN dims = '' THEN '' ELSE ltrim(dims, ', ') || ', ' END)
$f$;

-- 0005's two-argument form only served its own backfill.
DROP FUNCTION triage_rollup_sql(TEXT, INTEGER);

-- `source`'s calls once per registered property they carry.
CREATE FUNCTION triage_property_source(source TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
        SELECT s.*, p.key AS prop_key, p.value AS prop_value
        FROM (%s) s CROSS JOIN LATERAL jsonb_each_text(s.properties) p
        WHERE p.key IN (SELECT key FROM rollup_property_keys)
    $q$, source)
$f$;

-- The triggers of 0005, now also keeping property_rollups. Each EXECUTEs
-- the statements itself: a transition table is visible only to the
-- trigger function's own statements, not to functions it calls.
CREATE OR REPLACE FUNCTION triage_rollup_calls() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
DECLARE
    source TEXT := $q$
        SELECT n.*, triage_verdict(f.rating) AS feedback FROM new_calls n
        LEFT JOIN feedback f ON f.request_id = n.request_id AND n.kind = 'generate'
    $q$;
BEGIN
    EXECUTE triage_rollup_into(source, 1, 'call_rollups', '');
    IF EXISTS (SELECT 1 FROM rollup_property_keys) THEN
        EXECUTE triage_rollup_into(triage_property_source(source), 1, 'property_rollups', ', prop_key, prop_value');
    END IF;
    RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION triage_rollup_deleted_calls() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
DECLARE
    source TEXT := $q$
        SELECT o.*, triage_verdict(f.rating) AS feedback FROM old_calls o
        LEFT JOIN feedback f ON f.request_id = o.request_id AND o.kind = 'generate'
    $q$;
BEGIN
    EXECUTE triage_rollup_into(source, -1, 'call_rollups', '');
    IF EXISTS (SELECT 1 FROM rollup_property_keys) THEN
        EXECUTE triage_rollup_into(triage_property_source(source), -1, 'property_rollups', ', prop_key, prop_value');
    END IF;
    RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION triage_rollup_feedback() RETURNS TRIGGER LANGUAGE plpgsql AS $f$
DECLARE
    old_verdict TEXT := CASE WHEN TG_OP = 'INSERT' THEN 'none' ELSE triage_verdict(OLD.rating) END;
    new_verdict TEXT := CASE WHEN TG_OP = 'DELETE' THEN 'none' ELSE triage_verdict(NEW.rating) END;
    request UUID := CASE WHEN TG_OP = 'DELETE' THEN OLD.request_id ELSE NEW.request_id END;
    source TEXT := $q$
        SELECT c.*, %L::text AS feedback FROM llm_calls c
        WHERE c.request_id = %L AND c.kind = 'generate'
    $q$;
    props BOOLEAN := EXISTS (SELECT 1 FROM rollup_property_keys);
BEGIN
    IF old_verdict = new_verdict OR request IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE triage_rollup_into(format(source, old_verdict, request), -1, 'call_rollups', '');
    EXECUTE triage_rollup_into(format(source, new_verdict, request), 1, 'call_rollups', '');
    IF props THEN
        EXECUTE triage_rollup_into(triage_property_source(format(source, old_verdict, request)), -1,
            'property_rollups', ', prop_key, prop_value');
        EXECUTE triage_rollup_into(triage_property_source(format(source, new_verdict, request)), 1,
            'property_rollups', ', prop_key, prop_value');
    END IF;
    RETURN NULL;
END $f$;

-- Registers a key and rolls up the calls already written. Callers lock
-- llm_calls and feedback against writes first, so no call is counted twice
-- or missed between this snapshot and the triggers.
CREATE FUNCTION triage_rollup_add_property(prop TEXT) RETURNS BOOLEAN LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO rollup_property_keys (key) VALUES (prop) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    EXECUTE triage_rollup_into(format($q$
        SELECT c.*, triage_verdict(f.rating) AS feedback, %L::text AS prop_key, c.properties ->> %L AS prop_value
        FROM llm_calls c
        LEFT JOIN feedback f ON f.request_id = c.request_id AND c.kind = 'generate'
        WHERE c.properties ? %L
    $q$, prop, prop, prop), 1, 'property_rollups', ', prop_key, prop_value');
    RETURN TRUE;
END $f$;
