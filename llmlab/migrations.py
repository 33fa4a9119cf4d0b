"""The store's schema history: an append-only list of migrations (DESIGN.md, decision 4).

Rules: never edit or reorder a migration that has shipped; add a new one at the end. Each migration runs in one
transaction together with its row in the ``schema_migrations`` ledger. No secondary indexes or key constraints
(DuckDB cannot alter a column of a table that has one). A file whose ledger holds a version above
``len(MIGRATIONS)`` was written by a newer llmlab and is refused with :class:`~llmlab.errors.SchemaVersionError`.
"""

from __future__ import annotations

__all__ = [
    "MIGRATIONS",
]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "initial schema: runs, prompts, call_records, scores; calls and call_quality views",
        """
        CREATE TABLE runs (
            run_id VARCHAR NOT NULL,
            name VARCHAR,
            created_at_utc TIMESTAMP NOT NULL,
            finished_at_utc TIMESTAMP,
            status VARCHAR NOT NULL,          -- running | finished | cancelled | failed
            prompt_set VARCHAR,
            models VARCHAR,                   -- JSON list of model names
            params VARCHAR,                   -- JSON object: temperature, max_tokens, samples, ...
            tags VARCHAR,                     -- JSON list
            llmlab_version VARCHAR,
            litellm_version VARCHAR,
            sandbox BOOLEAN,                  -- figures come from the simulated sandbox providers
            n_prompts INTEGER,
            n_calls_planned INTEGER,
            pid INTEGER,
            source VARCHAR                    -- llmlab | import:routellm | ...
        );
        CREATE TABLE prompts (
            run_id VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            category VARCHAR,
            prompt VARCHAR,
            reference VARCHAR,
            scorer VARCHAR,
            system VARCHAR,
            source_id VARCHAR
        );
        CREATE TABLE call_records (
            call_id VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            sample_index INTEGER NOT NULL,
            model VARCHAR NOT NULL,           -- the model asked for
            answered_by VARCHAR,              -- the model that answered (differs after a fallback)
            status VARCHAR NOT NULL,          -- ok | error
            error_type VARCHAR,
            http_status INTEGER,
            error_message VARCHAR,
            attempts INTEGER NOT NULL,        -- provider requests made for this row (0: cache hit / not issued)
            fallbacks_taken INTEGER NOT NULL,
            retry_wait_ms DOUBLE,
            latency_ms DOUBLE,
            ttft_ms DOUBLE,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost_usd DOUBLE,                  -- NULL when the price is unknown
            cached BOOLEAN NOT NULL,
            cache_key VARCHAR,
            source_call_id VARCHAR,           -- for a cache hit: the call that paid for the answer
            response VARCHAR,
            finish_reason VARCHAR,
            attempt_log VARCHAR,              -- JSON list, one object per provider request
            created_at_utc TIMESTAMP NOT NULL
        );
        CREATE TABLE scores (
            run_id VARCHAR NOT NULL,
            call_id VARCHAR NOT NULL,
            prompt_id VARCHAR,
            model VARCHAR,
            kind VARCHAR NOT NULL,            -- auto | judge | human
            scorer VARCHAR NOT NULL,          -- e.g. exact, numeric:0.01, judge:sandbox/frontier, human
            score DOUBLE,                     -- 0..1
            raw_value DOUBLE,                 -- as given: 1..5 stars, 1..10 judge score, 0/1
            comment VARCHAR,
            created_at_utc TIMESTAMP NOT NULL
        );
        CREATE VIEW calls AS
            SELECT c.run_id, c.call_id, c.prompt_id, c.sample_index, p.category, c.model, c.answered_by,
                   c.status, c.error_type, c.http_status, c.error_message, c.attempts, c.fallbacks_taken,
                   c.retry_wait_ms, c.latency_ms, c.ttft_ms, c.input_tokens, c.output_tokens, c.cost_usd,
                   c.cached, c.response, c.finish_reason, c.created_at_utc, p.prompt, p.reference, p.scorer,
                   c.cache_key, c.source_call_id, c.attempt_log
            FROM call_records c LEFT JOIN prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id;
        CREATE VIEW call_quality AS
            SELECT call_id, run_id,
                   COALESCE(max_by(score, created_at_utc) FILTER (WHERE kind = 'human'),
                            avg(score) FILTER (WHERE kind = 'judge'),
                            avg(score) FILTER (WHERE kind = 'auto')) AS quality,
                   max_by(score, created_at_utc) FILTER (WHERE kind = 'human') AS human_score,
                   max_by(comment, created_at_utc) FILTER (WHERE kind = 'human') AS human_comment,
                   avg(score) FILTER (WHERE kind = 'judge') AS judge_score,
                   avg(score) FILTER (WHERE kind = 'auto') AS auto_score
            FROM scores GROUP BY call_id, run_id;
        """,
    ),
    (
        "runs.host: the machine a run was recorded on, so a run whose process died can be told apart",
        """
        ALTER TABLE runs ADD COLUMN host VARCHAR;
        """,
    ),
    (
        "production calls: litellm_call_id, trace_id, model_group, deployment, metadata, prompt_hash, response_hash",
        """
        ALTER TABLE call_records ADD COLUMN litellm_call_id VARCHAR;   -- LiteLLM's id (x-litellm-call-id)
        ALTER TABLE call_records ADD COLUMN trace_id VARCHAR;          -- shared by the retries / fallbacks of a request
        ALTER TABLE call_records ADD COLUMN model_group VARCHAR;       -- the LiteLLM model group asked for
        ALTER TABLE call_records ADD COLUMN deployment VARCHAR;        -- the deployment used (model_info.id)
        ALTER TABLE call_records ADD COLUMN metadata VARCHAR;          -- JSON: request tags and metadata (redacted)
        ALTER TABLE call_records ADD COLUMN prompt_hash VARCHAR;       -- sha256 hex of the prompt (prompt_id_for)
        ALTER TABLE call_records ADD COLUMN response_hash VARCHAR;     -- sha256 hex of the answer text
        CREATE OR REPLACE VIEW calls AS
            SELECT c.run_id, c.call_id, c.prompt_id, c.sample_index, p.category, c.model, c.answered_by,
                   c.status, c.error_type, c.http_status, c.error_message, c.attempts, c.fallbacks_taken,
                   c.retry_wait_ms, c.latency_ms, c.ttft_ms, c.input_tokens, c.output_tokens, c.cost_usd,
                   c.cached, c.response, c.finish_reason, c.created_at_utc, p.prompt, p.reference, p.scorer,
                   c.cache_key, c.source_call_id, c.attempt_log, c.litellm_call_id, c.trace_id, c.model_group,
                   c.deployment, c.metadata, c.prompt_hash, c.response_hash
            FROM call_records c LEFT JOIN prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id;
        """,
    ),
]
