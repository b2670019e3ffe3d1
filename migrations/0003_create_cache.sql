-- Response cache: one row per cached answer, found by the exact request
-- hash, and (when it was stored for the semantic cache) by the embedding of
-- the question. Scoped per API key (or the widget), so tenants never share.
CREATE TABLE cache_entries (
    key            TEXT PRIMARY KEY,
    scope          TEXT NOT NULL,
    model          TEXT NOT NULL,
    tier           TEXT CHECK (tier IN ('budget', 'balanced', 'premium')),
    -- the question, for the semantic guards and for admins
    query          TEXT NOT NULL,
    system_hash    TEXT NOT NULL,
    answer         TEXT NOT NULL,
    finish_reason  TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    -- what the original call cost: a hit saves this much
    cost_micros    BIGINT NOT NULL,
    embedding      REAL[],
    hits           INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX cache_entries_expires_idx ON cache_entries (expires_at);
CREATE INDEX cache_entries_semantic_idx ON cache_entries (created_at) WHERE embedding IS NOT NULL;
CREATE INDEX cache_entries_model_idx ON cache_entries (model);
CREATE INDEX cache_entries_scope_idx ON cache_entries (scope);
