//! The SRE's view, checked against live data: a Prometheus of this test's
//! own scrapes every role during a load run, and every panel query of the
//! dashboards and every alert query in `grafana/` must parse and return
//! data. promtool checks the Prometheus rule file.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Stack, free_port};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus scraping `targets` every second, loading our rule files.
async fn prometheus(stack: &Stack, targets: &[u16]) -> Prometheus {
    let dir = stack.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let rules = repo().join("grafana/alerts").canonicalize().unwrap();
    let targets: Vec<String> = targets
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - \"{}/*.rules.yml\"\n\
         scrape_configs:\n  - job_name: boxoffice\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (scripts/stack.sh install puts it on the machine)");
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    loop {
        if let Ok(r) = stack.http.get(format!("{}/-/ready", p.url)).send().await
            && r.status().is_success()
        {
            return p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "prometheus not ready; see {}",
            dir.join("prometheus.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Grafana's variables, as a dashboard with "All" selected would send them.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$__interval", "5s")
        .replace("$pod", ".*")
}

/// Runs an instant query: `Ok(rows)` or why it failed.
async fn query(stack: &Stack, prometheus: &str, expr: &str) -> Result<Vec<Value>, String> {
    let r: Value = stack
        .http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if r["status"] != "success" {
        return Err(format!("{}: {}", r["errorType"], r["error"]));
    }
    Ok(r["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Every query the dashboards and alert rules run, with where it comes from.
fn grafana_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let dashboards = repo().join("grafana/dashboards");
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let path = entry.unwrap().path();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in d["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                queries.push((
                    format!("{name}: {}", panel["title"].as_str().unwrap_or("?")),
                    as_grafana_sends(t["expr"].as_str().unwrap()),
                ));
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            // label_values(metric, label): the metric must exist.
            if let Some(def) = v["definition"].as_str()
                && let Some(inner) = def.strip_prefix("label_values(")
            {
                let metric = inner.split(',').next().unwrap().trim();
                queries.push((format!("{name}: variable {}", v["name"]), metric.to_owned()));
            }
        }
    }
    // Grafana-managed alert rules: the PromQL of each rule's query A.
    let alerting =
        std::fs::read_to_string(repo().join("grafana/provisioning/alerting/boxoffice.yaml"))
            .unwrap();
    let mut title = String::new();
    for line in alerting.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix("title: ") {
            title = serde_json::from_str(t).unwrap();
        }
        if let Some(model) = line.strip_prefix("model: ") {
            let model: Value = serde_json::from_str(model).unwrap();
            if let Some(expr) = model["expr"].as_str() {
                queries.push((format!("alert: {title}"), expr.to_owned()));
            }
        }
    }
    queries
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_and_alert_query_returns_data_during_a_load_run() {
    let rules = repo().join("grafana/alerts/boxoffice.rules.yml");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool (from Debian's prometheus package)");
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let mut stack = Stack::new("observability");
    let api = stack.start_all().await;
    let ports: Vec<u16> = stack.roles.values().map(|r| r.port).collect();
    let prom = prometheus(&stack, &ports).await;
    let event = stack.create_event(&api, 4, 25, 30, 600).await;

    let mut load = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["loadgen", "--api", &api, "--event", &event])
        .args([
            "--requests",
            "3000",
            "--concurrency",
            "20",
            "--max-quantity",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let a few scrapes and statistics reports see the sale under way.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let queries = grafana_queries();
    assert!(queries.len() > 30, "found only {} queries", queries.len());
    let started = Instant::now();
    let mut pending: Vec<(String, String, String)> = queries
        .into_iter()
        .map(|(w, q)| (w, q, String::new()))
        .collect();
    // Sampled series (lag, seats, probes) report every 5 s: retry a while.
    while !pending.is_empty() && started.elapsed() < Duration::from_secs(40) {
        let mut still = Vec::new();
        for (what, expr, _) in pending {
            match query(&stack, &prom.url, &expr).await {
                Ok(rows) if !rows.is_empty() => {}
                Ok(_) => still.push((what, expr, "no data".to_owned())),
                Err(e) => still.push((what, expr, e)),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    // A text capture of what matters during the load, for people reading the log.
    for (label, expr) in [
        (
            "booking outcomes/s by result",
            "sum by (result) (rate(boxoffice_booking_outcomes_total{kind=\"booking\"}[15s]))",
        ),
        (
            "booking call p99 (s)",
            "histogram_quantile(0.99, sum by (le) (rate(boxoffice_http_request_duration_seconds_bucket{route=\"/api/events/{id}/bookings\"}[15s])))",
        ),
        (
            "p99 latency by pod (s)",
            "histogram_quantile(0.99, sum by (le, pod) (rate(boxoffice_http_request_duration_seconds_bucket{route!~\"/health.*|/metrics\"}[15s])))",
        ),
        (
            "consumer lag by topic",
            "sum by (topic) (boxoffice_kafka_consumer_lag)",
        ),
        ("seats by state", "sum by (state) (boxoffice_event_seats)"),
        (
            "jemalloc allocated by pod (bytes)",
            "sum by (pod) (boxoffice_allocator_bytes{kind=\"allocated\"})",
        ),
        (
            "process RSS by pod (bytes)",
            "sum by (pod) (boxoffice_process_resident_memory_bytes)",
        ),
        (
            "RocksDB memory by kind (bytes)",
            "sum by (kind) (boxoffice_rocksdb_bytes{kind=~\"memtables|block_cache|table_readers\"})",
        ),
        (
            "stage p99 (s)",
            "histogram_quantile(0.99, sum by (le, stage) (rate(boxoffice_processing_stage_seconds_bucket[15s])))",
        ),
        (
            "pool connections in use",
            "sum by (pod, pool) (boxoffice_pool_connections{state=\"in_use\"})",
        ),
    ] {
        let rows: Vec<String> = query(&stack, &prom.url, expr)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"))
            .iter()
            .map(|row| {
                let labels: Vec<String> = row["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                format!(
                    "{{{}}} {}",
                    labels.join(","),
                    row["value"][1].as_str().unwrap_or("")
                )
            })
            .collect();
        eprintln!("[observability] {label}: {}", rows.join("  "));
    }
    let _ = load.kill();
    let _ = load.wait();
    assert!(
        pending.is_empty(),
        "queries without data or with errors:\n{}",
        pending
            .iter()
            .map(|(w, q, e)| format!("- {w}\n  {q}\n  -> {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
