//! Reading instances' `/metrics` directly, for when no Prometheus is
//! configured: the text exposition format, and per-pod figures from two
//! successive scrapes (rates and latency quantiles over the interval between
//! them, as Prometheus's `rate` and `histogram_quantile` would give).

use std::collections::BTreeMap;

use crate::model::PodStats;

/// One sample line: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The samples of a text exposition; comments and lines that do not parse
/// are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end = loop {
            // Skip separators, then read `key="value"`.
            while chars.next_if(|&(_, c)| c == ',' || c == ' ').is_some() {}
            match chars.peek() {
                Some(&(i, '}')) => break i,
                None => return None,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        };
        rest = &body[end + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The `q` quantile of a histogram given as (upper bound, cumulative count)
/// pairs, interpolated linearly inside the bucket as Prometheus does;
/// `None` when it holds no observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(upper, count) in &buckets {
        if count >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            return Some(if inside > 0.0 {
                lower + (upper - lower) * (rank - below) / inside
            } else {
                upper
            });
        }
        (lower, below) = (upper, count);
    }
    Some(lower)
}

const HTTP: &str = "boxoffice_http_request_duration_seconds";

/// Latency buckets of every HTTP route summed, by upper bound.
fn http_buckets(samples: &[Sample]) -> BTreeMap<String, (f64, f64)> {
    let mut by_le = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == format!("{HTTP}_bucket"))
    {
        if let Some(le) = s.label("le") {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            by_le.entry(le.to_owned()).or_insert((bound, 0.0)).1 += s.value;
        }
    }
    by_le
}

fn sum(samples: &[Sample], name: &str, kinds: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| kinds.is_empty() || s.label("kind").is_some_and(|k| kinds.contains(&k)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Per-pod figures from a scrape, and from the scrape before it `seconds`
/// earlier (rates and quantiles need two; without one they stay empty).
pub fn pod_stats(current: &[Sample], previous: Option<(&[Sample], f64)>) -> PodStats {
    let label = |key: &str| {
        current
            .iter()
            .find_map(|s| s.label(key))
            .unwrap_or("unknown")
            .to_owned()
    };
    let mut stats = PodStats {
        role: label("role"),
        pod: label("pod"),
        allocated_bytes: sum(current, "boxoffice_allocator_bytes", &["allocated"]),
        resident_bytes: sum(current, "boxoffice_allocator_bytes", &["resident"]),
        rocksdb_bytes: sum(
            current,
            "boxoffice_rocksdb_bytes",
            &["memtables", "block_cache", "table_readers"],
        ),
        tokio_workers: sum(current, "boxoffice_tokio_runtime", &["workers"]),
        tokio_alive_tasks: sum(current, "boxoffice_tokio_runtime", &["alive_tasks"]),
        tokio_queue_depth: sum(current, "boxoffice_tokio_runtime", &["global_queue_depth"]),
        ..PodStats::default()
    };
    if let Some((before, seconds)) = previous.filter(|(_, s)| *s > 0.0) {
        let count = |samples: &[Sample]| sum(samples, &format!("{HTTP}_count"), &[]).unwrap_or(0.0);
        // A restarted instance starts its counters again: no rate then.
        let delta = count(current) - count(before);
        if delta >= 0.0 {
            stats.requests_per_s = Some(delta / seconds);
            let earlier = http_buckets(before);
            let window: Vec<(f64, f64)> = http_buckets(current)
                .into_iter()
                .map(|(le, (bound, n))| (bound, n - earlier.get(&le).map_or(0.0, |e| e.1)))
                .collect();
            stats.p50_ms = quantile(0.5, &window).map(|s| s * 1000.0);
            stats.p99_ms = quantile(0.99, &window).map(|s| s * 1000.0);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCRAPE: &str = r#"# HELP boxoffice_allocator_bytes jemalloc
# TYPE boxoffice_allocator_bytes gauge
boxoffice_allocator_bytes{kind="allocated",pod="api-1",role="api"} 1048576
boxoffice_allocator_bytes{kind="resident",pod="api-1",role="api"} 4194304
boxoffice_tokio_runtime{kind="workers",pod="api-1",role="api"} 2
boxoffice_http_request_duration_seconds_bucket{method="GET",route="/a",status="200",le="0.01",pod="api-1",role="api"} 10
boxoffice_http_request_duration_seconds_bucket{method="GET",route="/a",status="200",le="0.1",pod="api-1",role="api"} 20
boxoffice_http_request_duration_seconds_bucket{method="GET",route="/a",status="200",le="+Inf",pod="api-1",role="api"} 20
boxoffice_http_request_duration_seconds_count{method="GET",route="/a",status="200",pod="api-1",role="api"} 20
odd{path="a \"quoted\", \\ value",x="1"} 3.5 1700000000000
"#;

    #[test]
    fn the_exposition_format_parses_with_labels_and_escapes() {
        let samples = parse(SCRAPE);
        assert_eq!(samples.len(), 8);
        assert_eq!(samples[0].label("kind"), Some("allocated"));
        assert_eq!(samples[0].value, 1_048_576.0);
        let odd = samples.last().unwrap();
        assert_eq!(odd.label("path"), Some(r#"a "quoted", \ value"#));
        assert_eq!(odd.value, 3.5);
        assert!(parse("broken{a=\"1\" 3\nno_value\n").is_empty());
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let buckets = [(0.01, 10.0), (0.1, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(quantile(0.5, &buckets), Some(0.01));
        let p75 = quantile(0.75, &buckets).unwrap();
        assert!((p75 - 0.055).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        // Everything above the last finite bound: the bound is the answer.
        assert_eq!(
            quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 5.0)]),
            Some(0.1)
        );
    }

    #[test]
    fn a_pod_is_described_from_two_scrapes() {
        let before = parse(SCRAPE);
        let after = parse(&SCRAPE.replace("} 20\n", "} 40\n").replace(
            "le=\"0.01\",pod=\"api-1\",role=\"api\"} 10",
            "le=\"0.01\",pod=\"api-1\",role=\"api\"} 30",
        ));
        let stats = pod_stats(&after, Some((&before, 2.0)));
        assert_eq!((stats.role.as_str(), stats.pod.as_str()), ("api", "api-1"));
        assert_eq!(stats.requests_per_s, Some(10.0));
        // All 20 new requests were under 10 ms.
        assert!(stats.p99_ms.unwrap() <= 10.0);
        assert_eq!(stats.allocated_bytes, Some(1_048_576.0));
        assert_eq!(stats.tokio_workers, Some(2.0));
        assert_eq!(pod_stats(&after, None).requests_per_s, None);
    }

    proptest! {
        #[test]
        fn a_quantile_lies_within_the_buckets_and_grows_with_q(
            counts in prop::collection::vec(0u32..1000, 1..8),
            q1 in 0.0f64..1.0,
            q2 in 0.0f64..1.0,
        ) {
            let mut cumulative = 0.0;
            let mut buckets: Vec<(f64, f64)> = counts.iter().enumerate().map(|(i, c)| {
                cumulative += f64::from(*c);
                (0.001 * 2f64.powi(i as i32), cumulative)
            }).collect();
            buckets.push((f64::INFINITY, cumulative));
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            match (quantile(lo, &buckets), quantile(hi, &buckets)) {
                (Some(a), Some(b)) => {
                    prop_assert!(a <= b + 1e-12);
                    prop_assert!(a >= 0.0 && b <= buckets[buckets.len() - 2].0 + 1e-12);
                }
                (None, None) => prop_assert_eq!(cumulative, 0.0),
                other => prop_assert!(false, "inconsistent {other:?}"),
            }
        }
    }
}
