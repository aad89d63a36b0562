//! The operations view's data: queue depth from the broker (each processor
//! group's committed offsets against the end of each partition) and per-pod
//! figures from Prometheus when one is configured, otherwise from each
//! instance's `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use boxoffice_platform::config::CommonConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::model::{OpsSnapshot, PartitionLag, PodStats};
use crate::promtext::{self, Sample};

/// Where the figures come from.
pub struct OpsConfig {
    pub common: CommonConfig,
    /// Prometheus base URL (`http://127.0.0.1:9090`).
    pub prometheus: Option<String>,
    /// Instances to scrape directly when there is no Prometheus
    /// (`http://127.0.0.1:8080`, ...).
    pub targets: Vec<String>,
}

struct Ops {
    config: OpsConfig,
    http: reqwest::Client,
    /// One client per processor group, made on first use.
    groups: Mutex<HashMap<String, std::sync::Arc<BaseConsumer>>>,
    /// The previous scrape of each target, for rates.
    previous: Mutex<HashMap<String, (Instant, Vec<Sample>)>>,
}

static OPS: OnceLock<Ops> = OnceLock::new();

pub fn configure(config: OpsConfig) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let _ = OPS.set(Ops {
        config,
        http,
        groups: Mutex::default(),
        previous: Mutex::default(),
    });
    Ok(())
}

fn ops() -> anyhow::Result<&'static Ops> {
    OPS.get().context("the operations view is not configured")
}

/// Everything the operations view shows, for signed-in organizers.
pub async fn snapshot() -> anyhow::Result<OpsSnapshot> {
    super::api::require_organizer().await?;
    let ops = ops()?;
    let mut problems = Vec::new();
    let (lag, pods, dead_letters) = futures::join!(queue_depth(ops), pods(ops), dead_letters(ops));
    let dead_letters = dead_letters
        .map_err(|e| problems.push(format!("dead letters: {e:#}")))
        .ok();
    let lag = lag.unwrap_or_else(|e| {
        problems.push(format!("queue depth: {e:#}"));
        Vec::new()
    });
    let (source, pods) = match pods {
        Ok((source, pods, mut unreadable)) => {
            problems.append(&mut unreadable);
            (source, pods)
        }
        Err(e) => {
            problems.push(format!("per-pod figures: {e:#}"));
            (String::new(), Vec::new())
        }
    };
    Ok(OpsSnapshot {
        at_ms: chrono::Utc::now().timestamp_millis(),
        source,
        prefix: ops.config.common.topic_prefix.clone(),
        lag,
        dead_letters,
        pods,
        problems,
    })
}

/// Messages on the dead-letter topic, all partitions (what processors could
/// not read or record; each carries its reason in headers).
async fn dead_letters(ops: &'static Ops) -> anyhow::Result<i64> {
    let topic = ops.config.common.topics().dead_letters;
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(3);
        let consumer = client(ops, &ops.config.common.group("dashboard"))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .with_context(|| format!("the broker did not describe {topic}"))?;
        let mut total = 0;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
            total += (high - low).max(0);
        }
        Ok(total)
    })
    .await?
}

/// Consumer lag of both processor groups, per topic and partition.
async fn queue_depth(ops: &'static Ops) -> anyhow::Result<Vec<PartitionLag>> {
    let topics = ops.config.common.topics();
    let watched = [
        (ops.config.common.group("seat-processor"), topics.commands),
        (
            ops.config.common.group("reservation-processor"),
            topics.events,
        ),
    ];
    tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for (group, topic) in watched {
            all.extend(group_lag(ops, &group, &topic)?);
        }
        Ok(all)
    })
    .await?
}

/// A Kafka client that reads `group`'s committed offsets (it never joins
/// the group), made once and kept.
fn client(ops: &Ops, group: &str) -> anyhow::Result<std::sync::Arc<BaseConsumer>> {
    let mut groups = ops.groups.lock().expect("groups lock");
    if let Some(c) = groups.get(group) {
        return Ok(c.clone());
    }
    let c: BaseConsumer =
        boxoffice_platform::kafka::client_config(&ops.config.common, "boxoffice-dashboard")
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .context("cannot create a Kafka client")?;
    let c = std::sync::Arc::new(c);
    groups.insert(group.to_owned(), c.clone());
    Ok(c)
}

fn group_lag(ops: &Ops, group: &str, topic: &str) -> anyhow::Result<Vec<PartitionLag>> {
    let timeout = Duration::from_secs(3);
    let consumer = client(ops, group)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("the broker did not describe {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} does not exist yet");
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .with_context(|| format!("the broker did not give {group}'s offsets"))?;
    let mut lags = Vec::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        let committed = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(n)) => Some(n),
            _ => None,
        };
        let short = |name: &str| {
            name.strip_prefix(&ops.config.common.topic_prefix)
                .unwrap_or(name)
                .to_owned()
        };
        lags.push(PartitionLag {
            group: short(group),
            topic: short(topic),
            partition: p,
            committed,
            end: high,
            lag: (high - committed.unwrap_or(low)).max(0),
        });
    }
    Ok(lags)
}

/// Per-pod figures, the source's name, and targets that could not be read.
async fn pods(ops: &Ops) -> anyhow::Result<(String, Vec<PodStats>, Vec<String>)> {
    if let Some(url) = &ops.config.prometheus {
        let pods = from_prometheus(ops, url).await?;
        return Ok((format!("Prometheus at {url}"), pods, Vec::new()));
    }
    anyhow::ensure!(
        !ops.config.targets.is_empty(),
        "neither BOXOFFICE_PROMETHEUS_URL nor BOXOFFICE_METRICS_TARGETS is set"
    );
    let scrapes = futures::future::join_all(ops.config.targets.iter().map(|t| async move {
        let url = format!("{}/metrics", t.trim_end_matches('/'));
        let text = async {
            ops.http
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        (t.clone(), text.await)
    }))
    .await;
    let mut pods = Vec::new();
    let mut problems = Vec::new();
    let mut previous = ops.previous.lock().expect("previous lock");
    for (target, scrape) in scrapes {
        match scrape {
            Ok(text) => {
                let now = Instant::now();
                let samples = promtext::parse(&text);
                let before = previous.get(&target);
                pods.push(promtext::pod_stats(
                    &samples,
                    before.map(|(at, s)| (s.as_slice(), now.duration_since(*at).as_secs_f64())),
                ));
                // Keep the older scrape until this one is a second newer, so
                // rates cover at least a second however often pages ask.
                if before.is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_secs(1)) {
                    previous.insert(target, (now, samples));
                }
            }
            Err(e) => problems.push(format!("{target}/metrics: {e}")),
        }
    }
    pods.sort_by(|a, b| (&a.role, &a.pod).cmp(&(&b.role, &b.pod)));
    Ok((
        format!("/metrics of {} instances", ops.config.targets.len()),
        pods,
        problems,
    ))
}

const HTTP: &str = "boxoffice_http_request_duration_seconds";

async fn from_prometheus(ops: &Ops, base: &str) -> anyhow::Result<Vec<PodStats>> {
    let by = "role, pod";
    let quantile = |q: f64| {
        format!("histogram_quantile({q}, sum by ({by}, le) (rate({HTTP}_bucket[1m]))) * 1000")
    };
    let gauge =
        |metric: &str, kinds: &str| format!("sum by ({by}) ({metric}{{kind=~\"{kinds}\"}})");
    let queries = [
        format!("sum by ({by}) (rate({HTTP}_count[1m]))"),
        quantile(0.5),
        quantile(0.99),
        gauge("boxoffice_allocator_bytes", "allocated"),
        gauge("boxoffice_allocator_bytes", "resident"),
        gauge(
            "boxoffice_rocksdb_bytes",
            "memtables|block_cache|table_readers",
        ),
        gauge("boxoffice_tokio_runtime", "workers"),
        gauge("boxoffice_tokio_runtime", "alive_tasks"),
        gauge("boxoffice_tokio_runtime", "global_queue_depth"),
    ];
    let results = futures::future::join_all(queries.iter().map(|q| query(ops, base, q))).await;
    let mut pods: BTreeMap<(String, String), PodStats> = BTreeMap::new();
    for (i, result) in results.into_iter().enumerate() {
        for (role, pod, value) in result? {
            let p = pods
                .entry((role.clone(), pod.clone()))
                .or_insert_with(|| PodStats {
                    role,
                    pod,
                    ..PodStats::default()
                });
            let slot = match i {
                0 => &mut p.requests_per_s,
                1 => &mut p.p50_ms,
                2 => &mut p.p99_ms,
                3 => &mut p.allocated_bytes,
                4 => &mut p.resident_bytes,
                5 => &mut p.rocksdb_bytes,
                6 => &mut p.tokio_workers,
                7 => &mut p.tokio_alive_tasks,
                _ => &mut p.tokio_queue_depth,
            };
            *slot = value.is_finite().then_some(value);
        }
    }
    Ok(pods.into_values().collect())
}

/// An instant query: (role, pod, value) per series.
async fn query(ops: &Ops, base: &str, promql: &str) -> anyhow::Result<Vec<(String, String, f64)>> {
    let body: Value = ops
        .http
        .get(format!("{}/api/v1/query", base.trim_end_matches('/')))
        .query(&[("query", promql)])
        .send()
        .await
        .context("Prometheus is unreachable")?
        .json()
        .await
        .context("Prometheus answered oddly")?;
    anyhow::ensure!(
        body["status"] == "success",
        "Prometheus refused {promql}: {}",
        body["error"]
    );
    Ok(body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let label = |k: &str| r["metric"][k].as_str().map(str::to_owned);
            let value = r["value"][1].as_str()?.parse().ok()?;
            Some((label("role")?, label("pod")?, value))
        })
        .collect())
}
