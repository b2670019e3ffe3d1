-- Core schema: tickets and their messages, one row per upstream LLM attempt
-- (or cache hit), feedback, API keys, admins, rate-limit and spend state, and
-- web sessions. Later features (labels, experiments, alerts) add their own
-- migrations.

CREATE TABLE api_keys (
    id                     UUID PRIMARY KEY,
    name                   TEXT NOT NULL,
    -- first characters of the key, shown in listings so a key can be recognised
    prefix                 TEXT NOT NULL,
    -- sha256 of the full key; the key itself is shown once and never stored
    key_hash               TEXT NOT NULL UNIQUE,
    can_force_tier         BOOLEAN NOT NULL DEFAULT FALSE,
    rpm_limit              INTEGER,
    tpm_limit              INTEGER,
    daily_budget_micros    BIGINT,
    monthly_budget_micros  BIGINT,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at             TIMESTAMPTZ
);

CREATE TABLE admin_users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at  TIMESTAMPTZ
);

-- A ticket is one customer conversation (the widget's session, or an API
-- caller's X-Triage-Session-Id).
CREATE TABLE tickets (
    id            UUID PRIMARY KEY,
    source        TEXT NOT NULL DEFAULT 'widget' CHECK (source IN ('widget', 'api')),
    -- caller-supplied session id for API tickets, unique per key
    external_id   TEXT,
    api_key_id    UUID REFERENCES api_keys (id),
    user_id       TEXT,
    status        TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'escalated', 'closed')),
    escalated_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tickets_external_id_idx ON tickets (api_key_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX tickets_created_at_idx ON tickets (created_at DESC);
CREATE INDEX tickets_status_idx ON tickets (status, updated_at DESC);

CREATE TABLE messages (
    id          UUID PRIMARY KEY,
    ticket_id   UUID NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content     TEXT NOT NULL,
    -- the pipeline request that produced (assistant) or answered (user) this message
    request_id  UUID,
    -- 'ok', or 'error' for an answer that failed part-way
    status      TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error', 'cancelled')),
    -- clock time, not transaction time: a conversation's order must survive
    -- two messages written in one transaction
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX messages_ticket_idx ON messages (ticket_id, created_at);
CREATE INDEX messages_request_idx ON messages (request_id);

-- One row per upstream attempt or cache hit. A request that retried twice and
-- fell back once has four rows sharing request_id.
CREATE TABLE llm_calls (
    id                 UUID PRIMARY KEY,
    request_id         UUID NOT NULL,
    ticket_id          UUID REFERENCES tickets (id) ON DELETE SET NULL,
    api_key_id         UUID REFERENCES api_keys (id),
    user_id            TEXT,
    kind               TEXT NOT NULL CHECK (kind IN ('classify', 'generate')),
    -- the routing decision this attempt served
    classifier         TEXT,
    complexity         TEXT CHECK (complexity IN ('simple', 'medium', 'complex')),
    confidence         REAL,
    reason             TEXT,
    tier               TEXT CHECK (tier IN ('budget', 'balanced', 'premium')),
    policy             TEXT,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cached_tokens      INTEGER NOT NULL DEFAULT 0,
    -- true when the provider reported no usage and tokens were counted locally
    tokens_estimated   BOOLEAN NOT NULL DEFAULT FALSE,
    cost_micros        BIGINT NOT NULL DEFAULT 0,
    -- for cache hits: what the original call cost
    saved_micros       BIGINT NOT NULL DEFAULT 0,
    latency_ms         INTEGER NOT NULL DEFAULT 0,
    ttft_ms            INTEGER,
    cache_status       TEXT NOT NULL DEFAULT 'none' CHECK (cache_status IN ('none', 'hit', 'miss', 'bypass')),
    attempt            INTEGER NOT NULL DEFAULT 1,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
    error              TEXT,
    experiment_id      UUID,
    variant            TEXT,
    properties         JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_created_at_idx ON llm_calls (created_at DESC);
CREATE INDEX llm_calls_request_idx ON llm_calls (request_id);
CREATE INDEX llm_calls_ticket_idx ON llm_calls (ticket_id, created_at);
CREATE INDEX llm_calls_tier_idx ON llm_calls (tier, created_at DESC);
CREATE INDEX llm_calls_complexity_idx ON llm_calls (complexity, created_at DESC);
CREATE INDEX llm_calls_model_idx ON llm_calls (model, created_at DESC);
CREATE INDEX llm_calls_user_idx ON llm_calls (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX llm_calls_key_idx ON llm_calls (api_key_id, created_at DESC) WHERE api_key_id IS NOT NULL;
CREATE INDEX llm_calls_cache_idx ON llm_calls (cache_status, created_at DESC);
CREATE INDEX llm_calls_properties_idx ON llm_calls USING GIN (properties jsonb_path_ops);

CREATE TABLE feedback (
    id            UUID PRIMARY KEY,
    -- one verdict per answer; a customer may change it
    message_id    UUID NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    ticket_id     UUID NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    request_id    UUID,
    rating        SMALLINT NOT NULL CHECK (rating IN (-1, 1)),
    comment       TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX feedback_request_idx ON feedback (request_id);
CREATE INDEX feedback_rating_idx ON feedback (rating, created_at DESC);

-- Token buckets shared by every instance: one row per (limit, subject).
CREATE TABLE rate_limit_buckets (
    bucket      TEXT PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Spend per scope (key or user) and period, for daily and monthly budgets.
CREATE TABLE spend_counters (
    scope         TEXT NOT NULL,
    period        TEXT NOT NULL CHECK (period IN ('day', 'month')),
    period_start  DATE NOT NULL,
    spent_micros  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period, period_start)
);

-- tower-sessions store.
CREATE TABLE web_sessions (
    id           TEXT PRIMARY KEY,
    data         BYTEA NOT NULL,
    expiry_date  TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_expiry_idx ON web_sessions (expiry_date);
