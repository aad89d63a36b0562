//! The operations view: queue depth and every pod.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::sign_in::OrganizersOnly;
use crate::app::{Notice, error_text, every};
use crate::charts::{HISTORY, Sparkline, push_bounded};
use crate::model::{OpsSnapshot, PodStats, human_bytes};
use crate::rpc::operations;

#[component]
pub fn OperationsPage() -> impl IntoView {
    view! {
        <OrganizersOnly>
            <OperationsView/>
        </OrganizersOnly>
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.1} ms"))
}

fn bytes(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), human_bytes)
}

fn count(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.0}"))
}

#[component]
fn OperationsView() -> impl IntoView {
    let history = RwSignal::new(Vec::<OpsSnapshot>::new());
    let problem = RwSignal::new(None::<String>);
    every(Duration::from_secs(2), move || {
        leptos::task::spawn_local(async move {
            match operations().await {
                Ok(s) => {
                    problem.set(None);
                    history.update(|h| push_bounded(h, s, HISTORY));
                }
                Err(e) => problem.set(Some(error_text(&e))),
            }
        });
    });
    let latest = move || history.read().last().cloned().unwrap_or_default();
    let series = move |pick: fn(&OpsSnapshot) -> f64| {
        Signal::derive(move || history.read().iter().map(pick).collect::<Vec<f64>>())
    };
    let pod_series = move |pod: String, pick: fn(&PodStats) -> Option<f64>| {
        Signal::derive(move || {
            history
                .read()
                .iter()
                .map(|s| {
                    s.pods
                        .iter()
                        .find(|p| p.pod == pod)
                        .and_then(pick)
                        .unwrap_or(0.0)
                })
                .collect::<Vec<f64>>()
        })
    };
    let total_lag = series(|s| s.lag.iter().map(|l| l.lag as f64).sum());
    view! {
        <Title text="boxoffice: operations"/>
        <h1>"Operations"</h1>
        <div class="toolbar">
            <A href="/organizer">"All events"</A>
            <span class="muted">{move || format!("Per-pod figures from {}; updated every 2 s", latest().source)}</span>
            <span class="muted">{move || {
                let prefix = latest().prefix;
                (!prefix.is_empty()).then(|| format!("Topic and group prefix: {prefix}"))
            }}</span>
        </div>
        <p role="status" aria-live="polite">
            {move || problem.get().map(|e| view! { <Notice ok=false text=e/> })}
            {move || latest().problems.into_iter().map(|p| view! { <Notice ok=false text=p/> }).collect_view()}
        </p>
        <h2>"Queue depth"</h2>
        <p>
            "Messages waiting, all partitions: "
            <strong id="total-lag">{move || latest().lag.iter().map(|l| l.lag).sum::<i64>()}</strong>
            " " <Sparkline values=total_lag label="Messages waiting, last two minutes"/>
        </p>
        <p>
            "Dead letters (messages no processor could read or record, kept with the reason): "
            <strong id="dead-letters">{move || latest().dead_letters.map_or_else(|| "unknown".to_owned(), |n| n.to_string())}</strong>
        </p>
        <div class="scroll">
            <table id="queue-depth" aria-label="Consumer lag per topic and partition, from the broker">
                <thead><tr><th>"Consumer group"</th><th>"Topic"</th><th>"Partition"</th><th>"Committed"</th><th>"End of log"</th><th>"Lag"</th></tr></thead>
                <tbody>
                    {move || latest().lag.into_iter().map(|l| view! {
                        <tr>
                            <td>{l.group}</td><td>{l.topic}</td><td>{l.partition}</td>
                            <td>{l.committed.map_or("none yet".to_owned(), |c| c.to_string())}</td>
                            <td>{l.end}</td><td>{l.lag}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <h2>"Pods"</h2>
        <div class="scroll">
            <table id="pods" aria-label="Per pod: request rate, latency, memory and runtime">
                <thead>
                    <tr>
                        <th>"Role"</th><th>"Pod"</th><th>"Requests/s"</th><th>"p50"</th><th>"p99"</th>
                        <th>"Allocated"</th><th>"Resident"</th><th>"RocksDB"</th>
                        <th>"Workers"</th><th>"Tasks"</th><th>"Queue"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || latest().pods.into_iter().map(|p| {
                        let rate = pod_series(p.pod.clone(), |p| p.requests_per_s);
                        let p99 = pod_series(p.pod.clone(), |p| p.p99_ms);
                        let resident = pod_series(p.pod.clone(), |p| p.resident_bytes);
                        view! {
                            <tr data-pod=p.pod.clone()>
                                <td>{p.role.clone()}</td><td>{p.pod.clone()}</td>
                                <td>
                                    {p.requests_per_s.map_or("–".to_owned(), |r| format!("{r:.1} "))}
                                    <Sparkline values=rate label=format!("{} requests per second", p.pod)/>
                                </td>
                                <td>{ms(p.p50_ms)}</td>
                                <td>
                                    {ms(p.p99_ms)} " "
                                    <Sparkline values=p99 label=format!("{} p99 latency", p.pod)/>
                                </td>
                                <td>{bytes(p.allocated_bytes)}</td>
                                <td>
                                    {bytes(p.resident_bytes)} " "
                                    <Sparkline values=resident label=format!("{} resident memory", p.pod)/>
                                </td>
                                <td>{bytes(p.rocksdb_bytes)}</td>
                                <td>{count(p.tokio_workers)}</td><td>{count(p.tokio_alive_tasks)}</td><td>{count(p.tokio_queue_depth)}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
