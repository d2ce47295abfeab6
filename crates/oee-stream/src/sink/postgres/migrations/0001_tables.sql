-- oee-stream schema version 1: the four tables and the batch ledger (docs/tables.md).

CREATE TABLE telemetry (
    time          timestamptz      NOT NULL,
    site_id       text             NOT NULL,
    line_id       text             NOT NULL,
    machine_id    text             NOT NULL,
    signal_type   text             NOT NULL,
    value         double precision,
    value_text    text,
    unit          text,
    quality       integer          NOT NULL,
    sp_group      text             NOT NULL,
    sp_edge_node  text             NOT NULL,
    sp_device     text,
    sp_metric     text             NOT NULL,
    is_historical boolean          NOT NULL DEFAULT false,
    received_at   timestamptz      NOT NULL
);
CREATE INDEX telemetry_machine_time ON telemetry (machine_id, time DESC);
CREATE INDEX telemetry_time_brin ON telemetry USING brin (time);

CREATE TABLE events (
    time        timestamptz NOT NULL,
    event_type  text        NOT NULL,
    site_id     text,
    line_id     text,
    machine_id  text,
    severity    integer,
    event_id    text        NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, time)
);
CREATE INDEX events_machine_time ON events (machine_id, time DESC);
CREATE INDEX events_type_time ON events (event_type, time DESC);

CREATE TABLE oee_windows (
    scope               text             NOT NULL CHECK (scope IN ('machine', 'line')),
    site_id             text             NOT NULL,
    line_id             text             NOT NULL,
    machine_id          text             NOT NULL DEFAULT '',
    window_kind         text             NOT NULL,
    window_start        timestamptz      NOT NULL,
    window_end          timestamptz      NOT NULL,
    planned_ms          bigint           NOT NULL,
    run_ms              bigint           NOT NULL,
    setup_ms            bigint           NOT NULL,
    unknown_ms          bigint           NOT NULL,
    ideal_ms            double precision NOT NULL,
    fully_productive_ms double precision NOT NULL,
    total_count         bigint           NOT NULL,
    good_count          bigint           NOT NULL,
    reject_count        bigint           NOT NULL,
    failures            bigint           NOT NULL,
    repair_ms           bigint           NOT NULL,
    availability        double precision,
    performance         double precision,
    quality             double precision,
    oee                 double precision,
    mtbf_s              double precision,
    mttr_s              double precision,
    flags               text[]           NOT NULL DEFAULT '{}',
    revision            integer          NOT NULL,
    updated_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, site_id, line_id, machine_id, window_kind, window_start)
);
CREATE INDEX oee_windows_start ON oee_windows (window_kind, window_start DESC);

CREATE TABLE faults (
    fault_id        text        PRIMARY KEY,
    site_id         text        NOT NULL,
    line_id         text        NOT NULL,
    machine_id      text        NOT NULL,
    code            bigint      NOT NULL,
    state           text        NOT NULL,
    severity        integer     NOT NULL,
    first_active    timestamptz NOT NULL,
    last_change     timestamptz NOT NULL,
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    occurrences     bigint      NOT NULL,
    flags           text[]      NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX faults_machine_state ON faults (machine_id, state);
CREATE INDEX faults_open ON faults (first_active DESC) WHERE state <> 'RESOLVED';

-- One row per committed batch, written in the batch's own transaction: a batch that is
-- retried or replayed from the spool after its commit finds its id here and is skipped.
CREATE TABLE sink_batches (
    writer_id    bigint      NOT NULL,
    batch_seq    bigint      NOT NULL,
    rows         integer     NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (writer_id, batch_seq)
);
CREATE INDEX sink_batches_committed_at ON sink_batches (committed_at);
