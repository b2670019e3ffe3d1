-- The dashboard's own state: classifier corrections, A/B experiments, and
-- alert rules with their history.

-- An admin's verdict on what a request's complexity should have been.
-- Retraining reads these beside the shipped training data.
CREATE TABLE labels (
    request_id  UUID PRIMARY KEY,
    query       TEXT NOT NULL,
    -- what the classifier said at the time
    predicted   TEXT CHECK (predicted IN ('simple', 'medium', 'complex')),
    label       TEXT NOT NULL CHECK (label IN ('simple', 'medium', 'complex')),
    admin_id    UUID REFERENCES admin_users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX labels_created_at_idx ON labels (created_at);
-- The review queue's unsure answers (confidence under 0.6, LOW_CONFIDENCE
-- in src/api/review.rs), newest first.
CREATE INDEX llm_calls_unsure_idx ON llm_calls (created_at DESC)
    WHERE kind = 'generate' AND status = 'ok' AND confidence < 0.6;

-- Routing against a fixed model (or two routing setups). A variant is
-- `routing`, `model:<catalog name>` or `tier:<tier>`; tickets are assigned
-- by a hash of (experiment, ticket), so a ticket keeps its variant.
CREATE TABLE experiments (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    variant_a   TEXT NOT NULL,
    variant_b   TEXT NOT NULL,
    -- percent of tickets that get variant B
    split_b     INTEGER NOT NULL CHECK (split_b BETWEEN 1 AND 99),
    status      TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at  TIMESTAMPTZ
);
-- one experiment at a time: a ticket must not be split two ways
CREATE UNIQUE INDEX experiments_one_running_idx ON experiments (status) WHERE status = 'running';
CREATE INDEX llm_calls_experiment_idx ON llm_calls (experiment_id, variant) WHERE experiment_id IS NOT NULL;

CREATE TABLE alert_rules (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    -- spend_hour / spend_day: USD over the last hour / day; error_rate:
    -- share of failed calls in the last 15 minutes; p95_latency: ms, same window
    metric       TEXT NOT NULL CHECK (metric IN ('spend_hour', 'spend_day', 'error_rate', 'p95_latency')),
    threshold    DOUBLE PRECISION NOT NULL,
    webhook_url  TEXT,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A rule fired (the metric went over); open until the metric is back under.
CREATE TABLE alert_events (
    id           UUID PRIMARY KEY,
    rule_id      UUID NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    value        DOUBLE PRECISION NOT NULL,
    threshold    DOUBLE PRECISION NOT NULL,
    fired_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ,
    -- the webhook: none configured, being sent, delivered, or given up
    delivery     TEXT NOT NULL DEFAULT 'none' CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX alert_events_rule_idx ON alert_events (rule_id, fired_at DESC);
CREATE UNIQUE INDEX alert_events_one_open_idx ON alert_events (rule_id) WHERE resolved_at IS NULL;
