-- The requests list sorted by cost or latency (newest-first has its own
-- index): read from the top of these instead of sorting a month of calls.
CREATE INDEX llm_calls_cost_idx ON llm_calls (cost_micros DESC, id DESC);
CREATE INDEX llm_calls_latency_idx ON llm_calls (latency_ms DESC, id DESC);
