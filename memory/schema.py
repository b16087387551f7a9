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
    # 4: the self-improvement loop: where a request was answered, mined patterns, the proxy's route table,
    #    and nightly runs (a nightly is a row in `runs` with kind 'nightly'; its pattern runs name it as parent).
    """
    ALTER TABLE usage ADD COLUMN source TEXT NOT NULL DEFAULT 'local';  -- local|upstream|shadow
    ALTER TABLE usage ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;     -- 1: the client left mid-stream
    ALTER TABLE usage ADD COLUMN route TEXT;                             -- pattern id that routed it locally
    ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';         -- run|nightly
    ALTER TABLE runs ADD COLUMN parent_id INTEGER;                        -- the nightly that started it
    CREATE TABLE patterns (
        id TEXT PRIMARY KEY,     -- kind + stable key, e.g. system:3fa2c1d09b1e
        kind TEXT NOT NULL,      -- system_prompt|cluster|negative_feedback|upstream|drift
        key TEXT NOT NULL,       -- what identifies it from one mining to the next (hash, cluster signature)
        label TEXT,              -- a name people can read: top terms, the prompt's first words
        state TEXT NOT NULL DEFAULT 'new',  -- new|handled|ignored
        count INTEGER NOT NULL,
        handled_count INTEGER,   -- its count when it was handled (new again once it grows past that)
        first_seen REAL,
        last_seen REAL,
        score REAL,
        threshold REAL,
        goal TEXT,               -- the goal it would produce, in plain words
        spec TEXT,               -- JSON: TaskSpec and what the data builder needs (system hash, request ids)
        examples TEXT,           -- JSON: a few request ids
        data TEXT,               -- JSON: kind-specific details (members, corrections, shares per day)
        run_id INTEGER,          -- the last run that acted on it
        mined REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX patterns_state ON patterns(state, kind);
    CREATE TABLE routes (
        pattern_id TEXT PRIMARY KEY,
        match TEXT NOT NULL,     -- JSON: how a request is matched, e.g. {"system_hash": "..."}
        upstream_model TEXT,     -- the name clients send
        local_model TEXT,        -- the version that answers when routed locally
        state TEXT NOT NULL,     -- local|upstream
        agreement REAL,          -- agreement with the upstream on the pattern's hold-out and shadow samples
        samples INTEGER NOT NULL DEFAULT 0,
        threshold REAL NOT NULL,
        data TEXT,               -- JSON: recent shadow comparisons
        updated REAL NOT NULL
    );
    """,
]
