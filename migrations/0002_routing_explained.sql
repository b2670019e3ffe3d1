-- Explainable, ticket-aware routing: the tier each answer came from (so a
-- ticket can keep its recent tier), and the routing explanation with each call.
ALTER TABLE messages ADD COLUMN tier TEXT CHECK (tier IN ('budget', 'balanced', 'premium'));
ALTER TABLE llm_calls ADD COLUMN route TEXT;

-- API tickets are found by (key, caller's session id); a missing key counts
-- as one key, so keyless callers' sessions are unique too.
DROP INDEX tickets_external_id_idx;
CREATE UNIQUE INDEX tickets_external_id_idx
    ON tickets ((COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid)), external_id)
    WHERE external_id IS NOT NULL;
