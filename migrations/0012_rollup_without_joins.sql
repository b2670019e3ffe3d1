-- The rollup statement of 0007 joined three aggregates of the same rows
-- (totals, latency histogram, time-to-first-token histogram) on nine or
-- eleven text columns. The insert trigger's plan is cached per connection
-- with the transition table estimated at a few dozen rows, so the planner
-- joined them in a nested loop: quadratic in the groups of a statement,
-- which made `triage demo-seed` run for hours and cost every call-log batch
-- a pass per group pair. It also summed one 140-bucket array per
-- (group, bucket) pair.
--
-- Now: one grouping per (group, histogram, bucket), then one GROUP BY per
-- group that carries the totals along and builds each histogram once from
-- its buckets' counts. No join, so no plan to get wrong.

-- A 140-bucket histogram from parallel arrays of buckets and counts (a
-- bucket may repeat; NULL arrays give all zeros).
CREATE FUNCTION triage_hist_from(ks INTEGER[], ns BIGINT[]) RETURNS BIGINT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(t.n, 0) ORDER BY i)
    FROM generate_series(0, 139) i
    LEFT JOIN (SELECT k, sum(n)::BIGINT AS n FROM unnest(ks, ns) u(k, n) GROUP BY k) t ON t.k = i
$$;

CREATE OR REPLACE FUNCTION triage_rollup_into(source TEXT, sign INTEGER, target TEXT, dims TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $f$
    SELECT format($q$
    WITH r AS (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, kind, coalesce(tier, '') AS tier,
            coalesce(complexity, '') AS complexity, model, provider, cache_status, status, feedback,
            attempt, cost_micros, saved_micros, input_tokens, output_tokens, latency_ms, ttft_ms %4$s
        FROM (%1$s) s
    ), b AS (
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
            FALSE AS ttft, triage_latency_bucket(latency_ms) AS k, count(*) AS n,
            count(*) FILTER (WHERE attempt <= 1) AS requests, sum(cost_micros) AS cost_micros,
            sum(saved_micros) AS saved_micros, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens
        FROM r GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s, k
        UNION ALL
        SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
            TRUE, triage_latency_bucket(ttft_ms) AS k, count(*), 0, 0, 0, 0, 0
        FROM r WHERE ttft_ms IS NOT NULL
        GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s, k
    )
    INSERT INTO %3$I AS c (day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
        calls, requests, cost_micros, saved_micros, input_tokens, output_tokens, latency_hist, ttft_hist)
    SELECT day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s,
        %2$s * sum(n) FILTER (WHERE NOT ttft), %2$s * sum(requests), %2$s * sum(cost_micros),
        %2$s * sum(saved_micros), %2$s * sum(input_tokens), %2$s * sum(output_tokens),
        triage_hist_from(array_agg(k) FILTER (WHERE NOT ttft), array_agg(%2$s * n) FILTER (WHERE NOT ttft)),
        triage_hist_from(array_agg(k) FILTER (WHERE ttft), array_agg(%2$s * n) FILTER (WHERE ttft))
    FROM b GROUP BY day, kind, tier, complexity, model, provider, cache_status, status, feedback %4$s
    ON CONFLICT (%5$s day, kind, tier, complexity, model, provider, cache_status, status, feedback) DO UPDATE SET
        calls = c.calls + EXCLUDED.calls,
        requests = c.requests + EXCLUDED.requests,
        cost_micros = c.cost_micros + EXCLUDED.cost_micros,
        saved_micros = c.saved_micros + EXCLUDED.saved_micros,
        input_tokens = c.input_tokens + EXCLUDED.input_tokens,
        output_tokens = c.output_tokens + EXCLUDED.output_tokens,
        latency_hist = triage_hist_add(c.latency_hist, EXCLUDED.latency_hist),
        ttft_hist = triage_hist_add(c.ttft_hist, EXCLUDED.ttft_hist)
    $q$, source, sign, target, dims,
        -- the extra dimensions first in the conflict target, as in the primary key
        CASE WHEN dims = '' THEN '' ELSE ltrim(dims, ', ') || ', ' END)
$f$;

-- The insert trigger holds the statement as static SQL (see 0009): write
-- it again from the new definition.
DO $do$
DECLARE
    source TEXT := $q$
        SELECT n.*, triage_verdict(f.rating) AS feedback FROM new_calls n
        LEFT JOIN feedback f ON f.request_id = n.request_id AND n.kind = 'generate'
    $q$;
BEGIN
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION triage_rollup_calls() RETURNS TRIGGER LANGUAGE plpgsql AS $body$
        BEGIN
            %s;
            IF EXISTS (SELECT 1 FROM rollup_property_keys) THEN
                %s;
            END IF;
            RETURN NULL;
        END $body$
    $f$,
        triage_rollup_into(source, 1, 'call_rollups', ''),
        triage_rollup_into(triage_property_source(source), 1, 'property_rollups', ', prop_key, prop_value'));
END $do$;
