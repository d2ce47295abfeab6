-- oee-stream SQLite schema version 1: the same four tables as PostgreSQL (docs/tables.md).
-- Times are INTEGER milliseconds since the Unix epoch (UTC); flags and payloads are JSON text.

CREATE TABLE telemetry (
    time          INTEGER NOT NULL,
    site_id       TEXT    NOT NULL,
    line_id       TEXT    NOT NULL,
    machine_id    TEXT    NOT NULL,
    signal_type   TEXT    NOT NULL,
    value         REAL,
    value_text    TEXT,
    unit          TEXT,
    quality       INTEGER NOT NULL,
    sp_group      TEXT    NOT NULL,
    sp_edge_node  TEXT    NOT NULL,
    sp_device     TEXT,
    sp_metric     TEXT    NOT NULL,
    is_historical INTEGER NOT NULL DEFAULT 0,
    received_at   INTEGER NOT NULL
);
CREATE INDEX telemetry_machine_time ON telemetry (machine_id, time);

CREATE TABLE events (
    time       INTEGER NOT NULL,
    event_type TEXT    NOT NULL,
    site_id    TEXT,
    line_id    TEXT,
    machine_id TEXT,
    severity   INTEGER,
    event_id   TEXT    NOT NULL,
    payload    TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (event_id, time)
);
CREATE INDEX events_machine_time ON events (machine_id, time);

CREATE TABLE oee_windows (
    scope               TEXT    NOT NULL CHECK (scope IN ('machine', 'line')),
    site_id             TEXT    NOT NULL,
    line_id             TEXT    NOT NULL,
    machine_id          TEXT    NOT NULL DEFAULT '',
    window_kind         TEXT    NOT NULL,
    window_start        INTEGER NOT NULL,
    window_end          INTEGER NOT NULL,
    planned_ms          INTEGER NOT NULL,
    run_ms              INTEGER NOT NULL,
    setup_ms            INTEGER NOT NULL,
    unknown_ms          INTEGER NOT NULL,
    ideal_ms            REAL    NOT NULL,
    fully_productive_ms REAL    NOT NULL,
    total_count         INTEGER NOT NULL,
    good_count          INTEGER NOT NULL,
    reject_count        INTEGER NOT NULL,
    failures            INTEGER NOT NULL,
    repair_ms           INTEGER NOT NULL,
    availability        REAL,
    performance         REAL,
    quality             REAL,
    oee                 REAL,
    mtbf_s              REAL,
    mttr_s              REAL,
    flags               TEXT    NOT NULL DEFAULT '[]',
    revision            INTEGER NOT NULL,
    PRIMARY KEY (scope, site_id, line_id, machine_id, window_kind, window_start)
);

CREATE TABLE faults (
    fault_id        TEXT    PRIMARY KEY,
    site_id         TEXT    NOT NULL,
    line_id         TEXT    NOT NULL,
    machine_id      TEXT    NOT NULL,
    code            INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    severity        INTEGER NOT NULL,
    first_active    INTEGER NOT NULL,
    last_change     INTEGER NOT NULL,
    resolved_at     INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    occurrences     INTEGER NOT NULL,
    flags           TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX faults_machine_state ON faults (machine_id, state);

CREATE TABLE sink_batches (
    writer_id    INTEGER NOT NULL,
    batch_seq    INTEGER NOT NULL,
    rows         INTEGER NOT NULL,
    committed_at INTEGER NOT NULL,
    PRIMARY KEY (writer_id, batch_seq)
);
