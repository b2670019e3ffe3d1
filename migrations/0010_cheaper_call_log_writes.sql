-- Every call-log row paid for two things it does not need (measured per
-- row in BENCHMARKS.md, "Gateway: cheaper call-log writes"):
--
-- 1. The foreign key to api_keys: a lookup and a row lock on the key per
--    inserted call. Keys are revoked, never deleted, and a call's key id
--    comes from the key that authenticated it.
ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_api_key_id_fkey;

-- 2. A GIN entry for an empty property set. Most calls carry no custom
--    properties; index only those that do. Property filters add
--    `properties <> '{}'` so the planner can use it.
DROP INDEX llm_calls_properties_idx;
CREATE INDEX llm_calls_properties_idx ON llm_calls USING GIN (properties jsonb_path_ops)
    WHERE properties <> '{}'::jsonb;
