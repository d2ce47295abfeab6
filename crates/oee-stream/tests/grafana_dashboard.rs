//! The Grafana provisioning in `deploy/grafana/`: the dashboard JSON is well formed (uid,
//! datasource on every panel and query, unique panel ids, every variable used is defined), and
//! EVERY variable and panel query runs against a real PostgreSQL database built by the sink's
//! migrations, after the Grafana macros and template variables are expanded the way Grafana
//! expands them for the PostgreSQL datasource (plain PostgreSQL, TimescaleDB toggle off). The
//! key panels return the inserted rows; NULL ratios stay NULL.
//!
//! Grafana itself is not run here: what is checked is the SQL Grafana would send.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

use oee_stream::sink::postgres::migrate;

mod common;
use common::TestDb;

const DS_UID: &str = "oee-stream-pg";
const FROM: &str = "2024-05-01T00:00:00Z";
const TO: &str = "2024-05-01T12:00:00Z";
/// What Grafana would choose for a 12 h range on a wide panel.
const INTERVAL: &str = "1m";

fn repo_file(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&repo_file("deploy/grafana/dashboards/oee-stream.json")).unwrap()
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

fn variables(d: &Value) -> &Vec<Value> {
    d["templating"]["list"].as_array().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The macro and variable expander: a small model of what Grafana does before the SQL reaches
// PostgreSQL. Unknown macros panic, so a dashboard using one this model does not know fails
// here instead of passing untested.

/// Selected values of the template variables; `multi` ones (multi-value or include-all) are
/// rendered as a quoted, comma-separated list, as Grafana's SQL datasources do.
struct Vars {
    values: BTreeMap<String, (Vec<String>, bool)>,
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn interval_seconds(text: &str) -> u64 {
    let t = text.trim().trim_matches(|c| c == '\'' || c == '"');
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .unwrap_or_else(|_| panic!("bad interval {text:?}"));
    n * match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => panic!("unknown interval unit {other:?} in {text:?}"),
    }
}

fn split_args(args: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    for c in args.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().unwrap().push(c);
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

fn macro_sql(name: &str, args: &[String]) -> String {
    let col = || args.first().cloned().unwrap_or_default();
    match name {
        "__timeFilter" => format!("{} BETWEEN '{FROM}' AND '{TO}'", col()),
        "__timeFrom" => format!("'{FROM}'"),
        "__timeTo" => format!("'{TO}'"),
        "__time" => format!("{} AS \"time\"", col()),
        // timescaledb: false in the datasource: floor(extract(epoch ...)), no time_bucket.
        "__timeGroup" | "__timeGroupAlias" => {
            let s = interval_seconds(args.get(1).expect("$__timeGroup needs an interval"));
            let g = format!("floor(extract(epoch from {})/{s})*{s}", col());
            if name == "__timeGroupAlias" {
                format!("{g} AS \"time\"")
            } else {
                g
            }
        }
        other => panic!("macro ${other} is not modelled by this test"),
    }
}

fn ident_end(s: &str, from: usize) -> usize {
    s[from..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |i| from + i)
}

fn expand(sql: &str, vars: &Vars) -> String {
    let interval_ms = (interval_seconds(INTERVAL) * 1000).to_string();
    let mut out = String::new();
    let mut i = 0;
    while let Some(off) = sql[i..].find('$') {
        out.push_str(&sql[i..i + off]);
        let at = i + off;
        let rest = &sql[at + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            // ${name} or ${name:format}
            let end = body.find('}').unwrap();
            let (name, fmt) = match body[..end].split_once(':') {
                Some((n, f)) => (n, Some(f)),
                None => (&body[..end], None),
            };
            out.push_str(&render(vars, name, fmt));
            i = at + 2 + end + 1;
        } else if rest.starts_with("__") {
            let end = ident_end(sql, at + 1);
            let name = &sql[at + 1..end];
            match name {
                "__interval" => {
                    out.push_str(INTERVAL);
                    i = end;
                }
                "__interval_ms" => {
                    out.push_str(&interval_ms);
                    i = end;
                }
                _ => {
                    assert!(sql[end..].starts_with('('), "macro ${name} without (");
                    let mut depth = 0;
                    let mut close = end;
                    for (j, c) in sql[end..].char_indices() {
                        match c {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    close = end + j;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    // Variables inside the arguments ($__interval) first, as Grafana does.
                    let args = expand(&sql[end + 1..close], vars);
                    let args = if args.is_empty() {
                        Vec::new()
                    } else {
                        split_args(&args)
                    };
                    out.push_str(&macro_sql(name, &args));
                    i = close + 1;
                }
            }
        } else {
            let end = ident_end(sql, at + 1);
            assert!(end > at + 1, "lone $ in {sql}");
            out.push_str(&render(vars, &sql[at + 1..end], None));
            i = end;
        }
    }
    out.push_str(&sql[i..]);
    out
}

fn render(vars: &Vars, name: &str, fmt: Option<&str>) -> String {
    let (values, multi) = vars
        .values
        .get(name)
        .unwrap_or_else(|| panic!("variable ${name} has no value in this test"));
    match fmt {
        Some("sqlstring") => values
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(","),
        Some("raw") => values.join(","),
        Some(other) => panic!("format :{other} is not modelled by this test"),
        None if *multi => values
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(","),
        // A single-value variable is inserted as is (not quoted) by Grafana's SQL datasources.
        None => values.join(","),
    }
}

/// Names of the template variables a text refers to (`$name`, `${name}`, `${name:fmt}`,
/// `[[name]]`), built-ins (`$__…`) left out.
fn used_variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = text[i..].find('$') {
        let at = i + off + 1;
        let (start, end) = if text[at..].starts_with('{') {
            let end = text[at..].find(['}', ':']).map_or(text.len(), |e| at + e);
            (at + 1, end)
        } else {
            (at, ident_end(text, at))
        };
        let name = &text[start..end];
        if !name.is_empty() && !name.starts_with("__") {
            out.insert(name.to_string());
        }
        i = end.max(at);
    }
    let mut rest = text;
    while let Some(s) = rest.find("[[") {
        let e = rest[s..].find("]]").unwrap();
        out.insert(rest[s + 2..s + e].split(':').next().unwrap().to_string());
        rest = &rest[s + e..];
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[test]
fn expander_matches_grafana_for_the_macros_used() {
    let vars = Vars {
        values: BTreeMap::from([
            ("site".to_string(), (vec!["S1".into(), "S'2".into()], true)),
            ("signal".to_string(), (vec!["it's".into()], false)),
        ]),
    };
    assert_eq!(
        expand(
            "SELECT $__timeGroupAlias(time, $__interval), v FROM t WHERE $__timeFilter(time) \
             AND s IN ($site) AND g = ${signal:sqlstring} AND a > $__timeFrom() AND $__interval_ms > 0",
            &vars
        ),
        format!(
            "SELECT floor(extract(epoch from time)/60)*60 AS \"time\", v FROM t WHERE time BETWEEN \
             '{FROM}' AND '{TO}' AND s IN ('S1','S''2') AND g = 'it''s' AND a > '{FROM}' AND 60000 > 0"
        )
    );
    assert_eq!(
        used_variables("a $site ${line} ${signal:sqlstring} [[machine]] $__interval"),
        BTreeSet::from(["site", "line", "signal", "machine"].map(String::from))
    );
}

#[test]
fn dashboard_structure() {
    let d = dashboard();
    assert_eq!(d["uid"], "oee-stream");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 39);
    let defined: BTreeSet<String> = variables(&d)
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    for name in ["site", "line", "machine", "signal"] {
        assert!(defined.contains(name), "variable {name}");
    }
    for v in variables(&d) {
        assert_eq!(v["datasource"]["uid"], DS_UID, "variable {}", v["name"]);
        assert!(v["query"].as_str().is_some_and(|q| !q.is_empty()));
        for used in used_variables(v["query"].as_str().unwrap()) {
            assert!(
                defined.contains(&used),
                "variable {} uses ${used}",
                v["name"]
            );
        }
    }
    let mut ids = BTreeSet::new();
    let ps = panels(&d);
    assert!(ps.len() >= 8);
    for p in &ps {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], DS_UID, "{title}");
        for used in used_variables(title) {
            assert!(defined.contains(&used), "{title}: ${used}");
        }
        if let Some(r) = p["repeat"].as_str() {
            assert!(defined.contains(r), "{title} repeats over ${r}");
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], DS_UID, "{title}");
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}");
            assert_eq!(t["rawQuery"], true, "{title}");
            assert!(
                ["time_series", "table"].contains(&t["format"].as_str().unwrap()),
                "{title}"
            );
            let sql = t["rawSql"].as_str().unwrap();
            for used in used_variables(sql) {
                assert!(defined.contains(&used), "{title}: ${used} is not defined");
            }
            assert!(
                !sql.to_lowercase().contains("coalesce(oee")
                    && !sql.to_lowercase().contains("coalesce(avail")
                    && !sql.to_lowercase().contains("coalesce(perf")
                    && !sql.to_lowercase().contains("coalesce(qual"),
                "{title}: ratios must stay NULL"
            );
        }
    }
}

#[test]
fn provisioning_files_point_at_the_dashboard_and_datasource() {
    let ds = repo_file("deploy/grafana/provisioning/datasources/oee-stream.yaml");
    for needle in [
        "uid: oee-stream-pg",
        "type: postgres",
        "${OEE_PG_HOST}",
        "${OEE_PG_DB}",
        "${OEE_PG_USER}",
        "${OEE_PG_PASSWORD}",
        "timescaledb: false",
    ] {
        assert!(
            ds.contains(needle),
            "datasource provisioning lacks {needle}"
        );
    }
    let dp = repo_file("deploy/grafana/provisioning/dashboards/oee-stream.yaml");
    assert!(dp.contains("type: file"));
    assert!(dp.contains("path: /var/lib/grafana/dashboards/oee-stream"));
    let doc = repo_file("docs/grafana.md");
    assert!(doc.contains("/var/lib/grafana/dashboards/oee-stream"));
}

// ---------------------------------------------------------------------------------------------

type Row = BTreeMap<String, Option<String>>;

async fn run(c: &tokio_postgres::Client, what: &str, sql: &str) -> Vec<Row> {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}\n{sql}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| (col.name().to_string(), r.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn col(rows: &[Row], name: &str) -> Vec<Option<String>> {
    rows.iter().map(|r| r[name].clone()).collect()
}

fn f(v: &Option<String>) -> f64 {
    v.as_deref().unwrap().parse().unwrap()
}

const SEED: &str = r#"
INSERT INTO oee_windows (scope, site_id, line_id, machine_id, window_kind, window_start, window_end,
  planned_ms, run_ms, setup_ms, unknown_ms, ideal_ms, fully_productive_ms, total_count, good_count,
  reject_count, failures, repair_ms, availability, performance, quality, oee, mtbf_s, mttr_s, revision)
VALUES
 -- M1: two hour windows in range (the second without planned time: ratios NULL), one outside
 ('machine','S1','L1','M1','hour','2024-05-01 08:00Z','2024-05-01 09:00Z',
   3600000, 2880000, 360000, 0, 2592000, 2400000, 1000, 950, 50, 2, 240000, 0.8, 0.9, 0.925926, 0.666667, 1620, 120, 0),
 ('machine','S1','L1','M1','hour','2024-05-01 09:00Z','2024-05-01 10:00Z',
   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0),
 ('machine','S1','L1','M1','hour','2024-04-30 08:00Z','2024-04-30 09:00Z',
   3600000, 3600000, 0, 0, 3600000, 3600000, 1, 1, 0, 1, 1000, 1, 1, 1, 1, NULL, NULL, 0),
 -- M2 on the same line (no failures), M3 on line L2, M9 on another site
 ('machine','S1','L1','M2','hour','2024-05-01 08:00Z','2024-05-01 09:00Z',
   3600000, 3600000, 0, 0, 1800000, 1800000, 10, 10, 0, 0, 0, 1, 0.5, 1, 0.5, NULL, NULL, 3),
 ('machine','S1','L2','M3','hour','2024-05-01 08:00Z','2024-05-01 09:00Z',
   3600000, 1800000, 0, 0, 1800000, 900000, 10, 5, 5, 1, 60000, 0.5, 1, 0.5, 0.25, 1800, 60, 0),
 ('machine','S2','L9','M9','hour','2024-05-01 08:00Z','2024-05-01 09:00Z',
   3600000, 3600000, 0, 0, 3600000, 3600000, 1, 1, 0, 0, 0, 1, 1, 1, 1, NULL, NULL, 0),
 -- line rows
 ('line','S1','L1','','hour','2024-05-01 08:00Z','2024-05-01 09:00Z',
   7200000, 6480000, 360000, 0, 4392000, 4200000, 1010, 960, 50, 2, 240000, 0.9, 0.68, 0.95, 0.583333, NULL, NULL, 0),
 ('line','S1','L1','','rolling','2024-05-01 10:00Z','2024-05-01 11:00Z',
   7200000, 6480000, 0, 0, 4392000, 4200000, 1010, 960, 50, 0, 0, 0.9, 0.68, 0.95, 0.61, NULL, NULL, 0),
 -- rolling windows: M1's latest is 0.42 (an older one 0.30), M2's latest has NULL oee
 ('machine','S1','L1','M1','rolling','2024-05-01 10:00Z','2024-05-01 11:00Z',
   3600000, 3000000, 0, 0, 1512000, 1512000, 500, 500, 0, 0, 0, 0.83, 0.5, 1, 0.42, NULL, NULL, 0),
 ('machine','S1','L1','M1','rolling','2024-05-01 09:59Z','2024-05-01 10:59Z',
   3600000, 3000000, 0, 0, 1080000, 1080000, 500, 500, 0, 0, 0, 0.83, 0.36, 1, 0.30, NULL, NULL, 0),
 ('machine','S1','L1','M2','rolling','2024-05-01 10:00Z','2024-05-01 11:00Z',
   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0);

INSERT INTO faults (fault_id, site_id, line_id, machine_id, code, state, severity, first_active,
  last_change, resolved_at, acknowledged_at, acknowledged_by, occurrences, flags)
VALUES
 ('S1/L1/M1/17/1', 'S1','L1','M1', 17, 'ACTIVE', 3, '2024-04-20 06:00Z', '2024-04-20 06:00Z', NULL, NULL, NULL, 4, '{chattering}'),
 ('S1/L1/M2/5/1', 'S1','L1','M2', 5, 'RESOLVED', 1, '2024-05-01 08:10Z', '2024-05-01 08:30Z', '2024-05-01 08:30Z', '2024-05-01 08:20Z', 'alice', 1, '{}'),
 ('S1/L1/M2/5/0', 'S1','L1','M2', 5, 'RESOLVED', 1, '2024-04-01 08:10Z', '2024-04-01 08:30Z', '2024-04-01 08:30Z', NULL, NULL, 1, '{}'),
 ('S2/L9/M9/1/1', 'S2','L9','M9', 1, 'ACTIVE', 2, '2024-05-01 08:00Z', '2024-05-01 08:00Z', NULL, NULL, NULL, 1, '{}');

INSERT INTO events (time, event_type, site_id, line_id, machine_id, severity, event_id, payload)
VALUES
 ('2024-05-01 08:10:05Z', 'fault_transition', 'S1','L1','M2', 1, 'e1',
   '{"instance_id":"S1/L1/M2/5/1","transition":"activated","code":5,"state":"ACTIVE","severity":1,"occurrences":1,"acknowledged_by":null}'),
 ('2024-05-01 08:20:00Z', 'fault_transition', 'S1','L1','M2', 1, 'e2',
   '{"instance_id":"S1/L1/M2/5/1","transition":"acknowledged","code":5,"state":"ACKNOWLEDGED","severity":1,"occurrences":1,"acknowledged_by":"alice"}'),
 ('2024-05-01 08:30:00Z', 'fault_transition', 'S1','L1','M2', 1, 'e3',
   '{"instance_id":"S1/L1/M2/5/1","transition":"resolved","code":5,"state":"RESOLVED","severity":1,"occurrences":1,"acknowledged_by":"alice"}'),
 ('2024-05-01 08:10:40Z', 'fault_transition', 'S1','L1','M1', 3, 'e4',
   '{"instance_id":"S1/L1/M1/17/1","transition":"reactivated","code":17,"state":"ACTIVE","severity":3,"occurrences":4,"acknowledged_by":null}'),
 ('2024-05-01 08:10:50Z', 'fault_transition', 'S1','L1','M1', 3, 'e5',
   '{"instance_id":"S1/L1/M1/17/1","transition":"activated","code":17,"state":"ACTIVE","severity":3,"occurrences":4,"acknowledged_by":null}'),
 ('2024-05-01 08:10:00Z', 'fault_transition', 'S2','L9','M9', 2, 'e6',
   '{"instance_id":"S2/L9/M9/1/1","transition":"activated","code":1,"state":"ACTIVE","severity":2,"occurrences":1,"acknowledged_by":null}'),
 ('2024-05-01 08:00:00Z', 'node_online', NULL, NULL, NULL, NULL, 'n1', '{}');

INSERT INTO telemetry (time, site_id, line_id, machine_id, signal_type, value, value_text, unit,
  quality, sp_group, sp_edge_node, sp_device, sp_metric, is_historical, received_at)
VALUES
 ('2024-05-01 08:00:10Z','S1','L1','M1','temperature', 20, NULL, 'celsius', 192, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:00:20Z','S1','L1','M1','temperature', 30, NULL, 'celsius', 192, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:00:30Z','S1','L1','M1','temperature', 'NaN', NULL, 'celsius', 192, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:00:40Z','S1','L1','M1','temperature', 'Infinity', NULL, 'celsius', 192, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:00:50Z','S1','L1','M1','temperature', 1000, NULL, 'celsius', 0, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:01:10Z','S1','L1','M1','temperature', 40, NULL, 'celsius', 192, 'G','N','D','Temp', false, now()),
 ('2024-05-01 08:00:10Z','S1','L1','M2','temperature', 50, NULL, NULL, 192, 'G','N','D2','Temp', false, now()),
 ('2024-05-01 08:00:10Z','S1','L1','M1','operator''s dial', 7, NULL, NULL, 192, 'G','N','D','Dial', false, now()),
 ('2024-05-01 08:00:10Z','S2','L9','M9','temperature', 99, NULL, 'celsius', 192, 'G','N','D9','Temp', false, now());
"#;

/// Every variable and panel query, expanded, against the sink's schema with a few rows.
#[tokio::test]
async fn every_query_runs_against_the_sink_schema_and_returns_the_rows() {
    let d = dashboard();
    let db = TestDb::create("grafana").await;
    let mut c = db.client().await;
    migrate(&mut c, 7, 0).await.unwrap();
    c.batch_execute(SEED).await.unwrap();

    // The variables, in dashboard order, each query expanded with the choices before it.
    let mut vars = Vars {
        values: BTreeMap::new(),
    };
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // What a user picks: site S1 only, then "All" lines and machines, a signal.
    let picks: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("site", vec!["S1".to_string()]),
        ("signal", vec!["temperature".to_string()]),
    ]);
    for v in variables(&d) {
        let name = v["name"].as_str().unwrap();
        let sql = expand(v["query"].as_str().unwrap(), &vars);
        let rows = run(&c, &format!("variable {name}"), &sql).await;
        let found: Vec<String> = rows
            .iter()
            .map(|r| r.values().next().unwrap().clone().unwrap())
            .collect();
        let multi = v["multi"] == true || v["includeAll"] == true;
        let chosen = picks.get(name).cloned().unwrap_or_else(|| found.clone());
        for pick in &chosen {
            assert!(
                found.contains(pick),
                "{name}: {pick} not offered in {found:?}"
            );
        }
        options.insert(name.to_string(), found);
        vars.values.insert(name.to_string(), (chosen, multi));
    }
    assert_eq!(options["site"], ["S1", "S2"]);
    assert_eq!(options["line"], ["L1", "L2"], "lines of site S1 only");
    assert_eq!(options["machine"], ["M1", "M2", "M3"]);
    assert_eq!(
        options["signal"],
        ["operator's dial", "temperature"],
        "signals of the chosen machines with numeric values in the range"
    );

    // Every panel query; a repeated panel runs once per value of its variable.
    let mut results: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for p in panels(&d) {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap().to_string();
        let repeats: Vec<Option<String>> = match p["repeat"].as_str() {
            Some(r) => vars.values[r].0.iter().cloned().map(Some).collect(),
            None => vec![None],
        };
        for rep in repeats {
            let mut local = Vars {
                values: vars.values.clone(),
            };
            let mut key = title.clone();
            if let (Some(value), Some(r)) = (&rep, p["repeat"].as_str()) {
                local.values.get_mut(r).unwrap().0 = vec![value.clone()];
                key = format!("{title} [{value}]");
            }
            for t in p["targets"].as_array().unwrap() {
                let sql = expand(t["rawSql"].as_str().unwrap(), &local);
                let rows = run(&c, &key, &sql).await;
                if t["format"] == "time_series" {
                    let times = col(&rows, "time");
                    let mut sorted = times.clone();
                    sorted.sort_by(|a, b| {
                        let (a, b) = (a.as_deref().unwrap(), b.as_deref().unwrap());
                        a.parse::<f64>()
                            .ok()
                            .zip(b.parse::<f64>().ok())
                            .map_or_else(|| a.cmp(b), |(x, y)| x.total_cmp(&y))
                    });
                    assert_eq!(times, sorted, "{key}: time series sorted by time");
                }
                results.insert(format!("{key} {}", t["refId"].as_str().unwrap()), rows);
            }
        }
    }
    let get = |k: &str| {
        results
            .get(&format!("{k} A"))
            .unwrap_or_else(|| panic!("no panel {k:?}; have {:?}", results.keys()))
    };

    // OEE by machine: M1's two hour windows (the second NULL, not 0), M2 and M3; not M9 (other
    // site), not the window outside the range.
    let oee_m = get("OEE by machine (hourly)");
    let pairs: Vec<(String, Option<String>)> = oee_m
        .iter()
        .map(|r| (r["metric"].clone().unwrap(), r["oee"].clone()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("M1".to_string(), Some("0.666667".to_string())),
            ("M2".to_string(), Some("0.5".to_string())),
            ("M3".to_string(), Some("0.25".to_string())),
            ("M1".to_string(), None),
        ]
    );

    let oee_l = get("OEE by line (hourly)");
    assert_eq!(col(oee_l, "metric"), [Some("S1 / L1".to_string())]);
    assert_eq!(col(oee_l, "oee"), [Some("0.583333".to_string())]);

    // Current OEE: the latest rolling window per machine; M2's NULL stays NULL.
    let cur = get("Current OEE per machine");
    assert_eq!(
        cur.iter()
            .map(|r| (r["machine_id"].clone().unwrap(), r["oee"].clone()))
            .collect::<Vec<_>>(),
        vec![
            ("M1".to_string(), Some("0.42".to_string())),
            ("M2".to_string(), None)
        ]
    );
    let cur_l = get("Current OEE per line");
    assert_eq!(col(cur_l, "oee"), [Some("0.61".to_string())]);

    // A/P/Q, repeated per machine.
    let apq = get("Availability / Performance / Quality: $machine [M1]");
    assert_eq!(apq.len(), 2);
    assert_eq!(apq[0]["availability"].as_deref(), Some("0.8"));
    assert_eq!(apq[0]["performance"].as_deref(), Some("0.9"));
    assert_eq!(apq[0]["quality"].as_deref(), Some("0.925926"));
    for k in ["availability", "performance", "quality", "oee"] {
        assert_eq!(apq[1][k], None, "NULL {k} stays NULL");
    }
    assert_eq!(
        get("Availability / Performance / Quality: $machine [M3]").len(),
        1
    );

    // MTBF / MTTR from the additive columns; no failures → NULL.
    let mt = get("MTBF / MTTR by machine");
    assert_eq!(
        col(mt, "machine"),
        ["M1", "M2", "M3"].map(|s| Some(s.to_string()))
    );
    assert_eq!(f(&mt[0]["failures"]), 2.0);
    assert!((f(&mt[0]["MTBF"]) - (2_880_000.0 + 360_000.0) / 1000.0 / 2.0).abs() < 1e-6);
    assert!((f(&mt[0]["MTTR"]) - 120.0).abs() < 1e-6);
    assert!((f(&mt[0]["OEE"]) - 2_400_000.0 / 3_600_000.0).abs() < 1e-9);
    assert!((f(&mt[0]["availability"]) - 0.8).abs() < 1e-9);
    assert!((f(&mt[0]["run h"]) - 0.8).abs() < 1e-9);
    assert_eq!(mt[1]["MTBF"], None);
    assert_eq!(mt[1]["MTTR"], None);
    assert!((f(&mt[2]["MTBF"]) - 1800.0).abs() < 1e-6);

    // Faults: the old open one (whatever its age) first, the one resolved in range with who
    // acknowledged it; not the one resolved long ago, not the other site's.
    let faults = get("Faults");
    assert_eq!(
        col(faults, "fault id"),
        ["S1/L1/M1/17/1", "S1/L1/M2/5/1"].map(|s| Some(s.to_string()))
    );
    assert_eq!(faults[0]["state"].as_deref(), Some("ACTIVE"));
    assert_eq!(faults[0]["occurrences"].as_deref(), Some("4"));
    assert_eq!(faults[0]["flags"].as_deref(), Some("chattering"));
    assert_eq!(faults[0]["acknowledged by"], None);
    assert_eq!(faults[1]["acknowledged by"].as_deref(), Some("alice"));
    assert!(faults[1]["first active"].is_some());

    // Fault transitions per minute by transition; M9's are filtered out.
    let tr = get("Fault transitions over time");
    let counts: Vec<(f64, String, String)> = tr
        .iter()
        .map(|r| {
            (
                f(&r["time"]),
                r["metric"].clone().unwrap(),
                r["transitions"].clone().unwrap(),
            )
        })
        .collect();
    let t0810 = 1_714_551_000.0; // 2024-05-01T08:10:00Z
    assert_eq!(
        counts,
        vec![
            (t0810, "activated".to_string(), "2".to_string()),
            (t0810, "reactivated".to_string(), "1".to_string()),
            (t0810 + 600.0, "acknowledged".to_string(), "1".to_string()),
            (t0810 + 1200.0, "resolved".to_string(), "1".to_string()),
        ]
    );
    let log = get("Fault transition log");
    assert_eq!(log.len(), 5);
    assert_eq!(log[0]["transition"].as_deref(), Some("resolved"));
    assert_eq!(log[0]["acknowledged by"].as_deref(), Some("alice"));

    // Telemetry: per-minute average of good, finite samples (NaN, Infinity, bad quality left
    // out), one series per machine with its unit.
    let tel = get("Telemetry: $signal");
    let series: Vec<(f64, String, f64)> = tel
        .iter()
        .map(|r| (f(&r["time"]), r["metric"].clone().unwrap(), f(&r["value"])))
        .collect();
    let t0800 = 1_714_550_400.0;
    assert_eq!(
        series,
        vec![
            (t0800, "M1 (celsius)".to_string(), 25.0),
            (t0800, "M2".to_string(), 50.0),
            (t0800 + 60.0, "M1 (celsius)".to_string(), 40.0),
        ]
    );

    // The signal name with a quote is escaped by ${signal:sqlstring}.
    let tele_sql = panels(&d)
        .into_iter()
        .find(|p| p["title"] == "Telemetry: $signal")
        .unwrap()["targets"][0]["rawSql"]
        .as_str()
        .unwrap()
        .to_string();
    let mut quoted = Vars {
        values: vars.values.clone(),
    };
    quoted.values.get_mut("signal").unwrap().0 = vec!["operator's dial".to_string()];
    let dial = run(&c, "telemetry, quoted signal", &expand(&tele_sql, &quoted)).await;
    assert_eq!(col(&dial, "value"), [Some("7".to_string())]);
}
