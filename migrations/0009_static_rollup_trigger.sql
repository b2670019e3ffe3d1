-- The insert trigger ran its rollup statements through EXECUTE, so
-- Postgres parsed and planned a five-part CTE on every call-log batch: at
-- the gateway benchmark's rate that was about a fifth of the database's
-- CPU per logged call and most of the added p99 at one client. The same
-- statements written into the function body as static SQL are planned
-- once per connection (PL/pgSQL caches them; a transition table may be
-- named in the trigger function's own static statements). The text is
-- generated here from `triage_rollup_into`, so it stays the one
-- definition of a rollup.
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
