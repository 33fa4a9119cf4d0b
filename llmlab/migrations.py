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
        "conversations, structured output and tool calls: prompts.messages / response_format / tools / tool_choice "
        "(JSON), call_records.tool_calls (JSON) and response_mode; the calls view shows them",
        """
        ALTER TABLE prompts ADD COLUMN IF NOT EXISTS messages VARCHAR;          -- JSON list, OpenAI chat format
        ALTER TABLE prompts ADD COLUMN IF NOT EXISTS response_format VARCHAR;   -- JSON, OpenAI response_format
        ALTER TABLE prompts ADD COLUMN IF NOT EXISTS tools VARCHAR;             -- JSON list of function tools
        ALTER TABLE prompts ADD COLUMN IF NOT EXISTS tool_choice VARCHAR;       -- JSON
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS tool_calls VARCHAR;   -- JSON list of {id, name, arguments}
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS response_mode VARCHAR; -- json_schema | json_tool | ...
        CREATE OR REPLACE VIEW calls AS
            SELECT c.run_id, c.call_id, c.prompt_id, c.sample_index, p.category, c.model, c.answered_by,
                   c.status, c.error_type, c.http_status, c.error_message, c.attempts, c.fallbacks_taken,
                   c.retry_wait_ms, c.latency_ms, c.ttft_ms, c.input_tokens, c.output_tokens, c.cost_usd,
                   c.cached, c.response, c.finish_reason, c.created_at_utc, p.prompt, p.reference, p.scorer,
                   c.cache_key, c.source_call_id, c.attempt_log, c.tool_calls, c.response_mode, p.messages,
                   p.response_format, p.tools, p.tool_choice
            FROM call_records c LEFT JOIN prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id;
        """,
    ),
    (
        "pairwise judge verdicts; scores.version, passed, rationale; call_quality takes each scorer's latest score",
        """
        CREATE TABLE IF NOT EXISTS pairwise_verdicts (
            run_id VARCHAR NOT NULL,          -- the run whose answers were compared
            prompt_id VARCHAR NOT NULL,
            category VARCHAR,
            model_a VARCHAR NOT NULL,
            model_b VARCHAR NOT NULL,
            call_id_a VARCHAR,
            call_id_b VARCHAR,
            judge VARCHAR NOT NULL,           -- the judge model
            judge_run_id VARCHAR,             -- the run that holds the judge's calls
            verdict_ab VARCHAR,               -- A shown first: '1' (A) | '2' (B) | 'tie' | NULL (no verdict)
            verdict_ba VARCHAR,               -- B shown first: '1' (B) | '2' (A) | 'tie' | NULL
            judge_call_id_ab VARCHAR,
            judge_call_id_ba VARCHAR,
            winner VARCHAR,                   -- a | b | tie (inconsistent orders count as a tie) | NULL (not judged)
            consistent BOOLEAN,               -- both orders gave the same verdict
            source VARCHAR NOT NULL,          -- judge | identical (same text: a tie, no call) | error (a call failed)
            created_at_utc TIMESTAMP NOT NULL
        );
        ALTER TABLE scores ADD COLUMN IF NOT EXISTS version VARCHAR;
        ALTER TABLE scores ADD COLUMN IF NOT EXISTS passed BOOLEAN;
        ALTER TABLE scores ADD COLUMN IF NOT EXISTS rationale VARCHAR;
        UPDATE scores SET passed = score >= 0.5 WHERE passed IS NULL AND score IS NOT NULL;
        CREATE OR REPLACE VIEW call_quality AS
            WITH latest AS (
                SELECT call_id, run_id, kind, scorer, max_by(score, created_at_utc) AS score,
                       max_by(comment, created_at_utc) AS comment, max(created_at_utc) AS created_at_utc
                FROM scores GROUP BY call_id, run_id, kind, scorer
            )
            SELECT call_id, run_id,
                   COALESCE(max_by(score, created_at_utc) FILTER (WHERE kind = 'human'),
                            avg(score) FILTER (WHERE kind = 'judge'),
                            avg(score) FILTER (WHERE kind = 'auto')) AS quality,
                   max_by(score, created_at_utc) FILTER (WHERE kind = 'human') AS human_score,
                   max_by(comment, created_at_utc) FILTER (WHERE kind = 'human') AS human_comment,
                   avg(score) FILTER (WHERE kind = 'judge') AS judge_score,
                   avg(score) FILTER (WHERE kind = 'auto') AS auto_score
            FROM latest GROUP BY call_id, run_id;
        """,
    ),
    (
        "routing_decisions: per prompt of a routed run (llmlab.run(..., router=...)), the model a policy chose",
        """
        CREATE TABLE routing_decisions (
            run_id VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            model VARCHAR NOT NULL,           -- the model the policy chose (the run calls only it)
            policy_kind VARCHAR,              -- category | prompt | complexity
            score DOUBLE,                     -- the policy's score for the deciding comparison, when it has one
            threshold DOUBLE,
            decision VARCHAR,                 -- JSON: every field of the decision
            router VARCHAR,                   -- where the policy came from (file path or object)
            created_at_utc TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        "batches and batch_requests: provider batch jobs of batch-mode runs, so a restarted process resumes them",
        """
        CREATE TABLE batches (
            part_id VARCHAR NOT NULL,         -- llmlab's id of one provider batch of a run
            run_id VARCHAR NOT NULL,
            model VARCHAR NOT NULL,           -- the model asked for (llmlab's name)
            provider VARCHAR NOT NULL,        -- openai | anthropic
            batch_id VARCHAR,                 -- the provider's batch id (NULL until submitted)
            state VARCHAR NOT NULL,           -- submitting | submitted | collected | lost
            provider_status VARCHAR,          -- as the provider last said: in_progress, completed, expired, ...
            n_requests INTEGER NOT NULL,
            n_ok INTEGER,
            n_error INTEGER,
            input_file_id VARCHAR,
            output_file_id VARCHAR,
            error_file_id VARCHAR,
            created_at_utc TIMESTAMP NOT NULL,
            submitted_at_utc TIMESTAMP,
            completed_at_utc TIMESTAMP,       -- when the provider finished (or cancelled / expired) the batch
            collected_at_utc TIMESTAMP,       -- when its rows were written to call_records
            checked_at_utc TIMESTAMP,
            error_message VARCHAR
        );
        CREATE TABLE batch_requests (
            run_id VARCHAR NOT NULL,
            part_id VARCHAR NOT NULL,
            call_id VARCHAR NOT NULL,         -- also the request's custom_id
            prompt_id VARCHAR NOT NULL,
            sample_index INTEGER NOT NULL,
            model VARCHAR NOT NULL,
            cache_key VARCHAR
        );
        """,
    ),
    (
        "production calls: litellm_call_id, trace_id, model_group, deployment, metadata, prompt_hash, response_hash",
        """
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS litellm_call_id VARCHAR;  -- LiteLLM's id (x-litellm-call-id)
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS trace_id VARCHAR;     -- shared by a request's retries / fallbacks
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS model_group VARCHAR;  -- the LiteLLM model group asked for
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS deployment VARCHAR;   -- the deployment used (model_info.id)
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS metadata VARCHAR;     -- JSON: request tags and metadata (redacted)
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS prompt_hash VARCHAR;  -- sha256 hex of the prompt (prompt_id_for)
        ALTER TABLE call_records ADD COLUMN IF NOT EXISTS response_hash VARCHAR; -- sha256 hex of the answer text
        CREATE OR REPLACE VIEW calls AS
            SELECT c.run_id, c.call_id, c.prompt_id, c.sample_index, p.category, c.model, c.answered_by,
                   c.status, c.error_type, c.http_status, c.error_message, c.attempts, c.fallbacks_taken,
                   c.retry_wait_ms, c.latency_ms, c.ttft_ms, c.input_tokens, c.output_tokens, c.cost_usd,
                   c.cached, c.response, c.finish_reason, c.created_at_utc, p.prompt, p.reference, p.scorer,
                   c.cache_key, c.source_call_id, c.attempt_log, c.tool_calls, c.response_mode, p.messages,
                   p.response_format, p.tools, p.tool_choice, c.litellm_call_id, c.trace_id, c.model_group,
                   c.deployment, c.metadata, c.prompt_hash, c.response_hash
            FROM call_records c LEFT JOIN prompts p ON p.run_id = c.run_id AND p.prompt_id = c.prompt_id;
        """,
    ),
]
