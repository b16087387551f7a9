"""The store's schema as an ordered list of migrations; `PRAGMA user_version` records how many ran."""

from __future__ import annotations

# Append only: never edit a migration that has shipped, add a new one.
MIGRATIONS: list[str] = [
    # 1: runs, their trace events, datasets and the model registry.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        goal TEXT NOT NULL,
        policy TEXT NOT NULL DEFAULT 'interactive',
        status TEXT NOT NULL DEFAULT 'created',   -- created|running|paused|failed|finished|rejected
        gate TEXT,                                -- the gate a paused run waits at
        spec TEXT,                                -- TaskSpec as JSON
        model TEXT,                               -- model version the run produced
        verdict TEXT,                             -- pass|fail|null
        error TEXT,
        owner_pid INTEGER,                        -- process currently driving the run
        created REAL NOT NULL,
        updated REAL NOT NULL,
        wall_seconds REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        ts REAL NOT NULL,
        node TEXT,
        kind TEXT NOT NULL,      -- node_start|node_end|tool_call|decision|gate|answer|error|metric|llm
        name TEXT,
        data TEXT,               -- JSON
        duration_s REAL
    );
    CREATE INDEX events_run ON events(run_id, id);
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,     -- content hash
        run_id INTEGER,
        path TEXT NOT NULL,
        n_train INTEGER, n_val INTEGER, n_test INTEGER,
        report TEXT,             -- JSON
        created REAL NOT NULL
    );
    CREATE TABLE models (
        name TEXT PRIMARY KEY,   -- e.g. smollm2-135m-r7
        run_id INTEGER,
        base TEXT NOT NULL,
        kind TEXT NOT NULL,      -- base|adapter|merged|full
        path TEXT NOT NULL,
        dataset_id TEXT,
        config TEXT,             -- JSON
        metrics TEXT,            -- JSON
        verdict TEXT,
        parent TEXT,
        status TEXT NOT NULL DEFAULT 'candidate',  -- candidate|production|archived
        created REAL NOT NULL,
        promoted REAL
    );
    """,
    # 2: what earlier runs taught the planner.
    """
    CREATE TABLE lessons (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER,
        topic TEXT NOT NULL,     -- sweep|timing|failure|data
        text TEXT NOT NULL,
        data TEXT,               -- JSON
        created REAL NOT NULL
    );
    """,    # 3: the serving endpoint: one row per request, feedback on responses, hashed API keys.
    """
    CREATE TABLE usage (
        id TEXT PRIMARY KEY,     -- the response id the client saw (chatcmpl-...)
        ts REAL NOT NULL,
        model TEXT,              -- model version that answered
        key_id INTEGER,          -- api_keys.id of the caller, null when no key was required
        status TEXT NOT NULL,    -- ok|client_disconnected|queue_full|invalid_request|unauthorized|not_found|error
        finish_reason TEXT,      -- stop|length
        stream INTEGER NOT NULL DEFAULT 0,
        system_prompt TEXT,      -- per --log-content: null, redacted or verbatim
        system_hash TEXT,        -- sha256 of the system prompt, kept even when content is not
        messages TEXT,           -- JSON
        response TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s REAL,
        ttft_s REAL,             -- seconds to the first streamed token
        params TEXT,             -- JSON: max_tokens, temperature, top_p, stop
        error TEXT
    );
    CREATE INDEX usage_ts ON usage(ts);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        response_id TEXT NOT NULL,
        ts REAL NOT NULL,
        rating INTEGER,          -- -1 bad, 0 neutral, 1 good
        correction TEXT,         -- the answer the caller wanted instead
        comment TEXT,
        key_id INTEGER
    );
    CREATE INDEX feedback_response ON feedback(response_id);
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,    -- first characters, so a person can tell keys apart
        hash TEXT NOT NULL UNIQUE,  -- sha256 of the key, the key itself is never stored
        created REAL NOT NULL,
        revoked REAL
    );
    """,
]
