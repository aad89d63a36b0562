//! An event's sale, live, for its organizers.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::sign_in::OrganizersOnly;
use crate::app::{Notice, error_text, every};
use crate::charts::{HISTORY, Sparkline, push_bounded};
use crate::model::{NOT_YOUR_EVENT, SaleStats, decode_states};
use crate::rpc::{event_page, live_sale, set_sale};
use crate::seatmap::{SeatMap, first_with_seats, follow_feed};

#[component]
pub fn SalePage() -> impl IntoView {
    view! {
        <OrganizersOnly>
            <SaleView/>
        </OrganizersOnly>
    }
}

/// Bookings decided per second between consecutive samples.
fn rates(history: &[SaleStats]) -> Vec<f64> {
    history
        .windows(2)
        .map(|w| {
            let seconds = (w[1].at_ms - w[0].at_ms) as f64 / 1000.0;
            if seconds > 0.0 {
                w[1].decided.saturating_sub(w[0].decided) as f64 / seconds
            } else {
                0.0
            }
        })
        .collect()
}

#[component]
fn SaleView() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let layout = Resource::new(id, event_page);
    let history = RwSignal::new(Vec::<SaleStats>::new());
    let problem = RwSignal::new(None::<String>);
    // Another organizer's event: its figures are refused, so none is drawn.
    let foreign = RwSignal::new(false);
    let refresh = move || {
        if foreign.get_untracked() {
            return;
        }
        let event = id();
        leptos::task::spawn_local(async move {
            match live_sale(event).await {
                Ok(s) => {
                    problem.set(None);
                    history.update(|h| push_bounded(h, s, HISTORY));
                }
                Err(e) => {
                    let text = error_text(&e);
                    if text == NOT_YOUR_EVENT {
                        foreign.set(true);
                    }
                    problem.set(Some(text));
                }
            }
        });
    };
    every(Duration::from_secs(1), refresh);
    let latest = move || history.read().last().cloned();
    let per_second = Signal::derive(move || rates(&history.read()));
    let sold_line = Signal::derive(move || history.read().iter().map(|s| s.sold as f64).collect());
    let switch = Action::new(move |open: &bool| set_sale(id(), *open));
    Effect::new(move |_| {
        if let Some(r) = switch.value().get() {
            if let Err(e) = r {
                problem.set(Some(error_text(&e)));
            }
            refresh();
        }
    });
    let stat =
        |name: &'static str, key: &'static str, value: Box<dyn Fn() -> String + Send + Sync>| {
            view! {
                <div class="stat" data-stat=key>
                    <div class="name">{name}</div>
                    <div class="value">{value}</div>
                </div>
            }
        };
    let figure = move |f: fn(&SaleStats) -> String| {
        Box::new(move || latest().map(|s| f(&s)).unwrap_or_else(|| "…".to_owned()))
            as Box<dyn Fn() -> String + Send + Sync>
    };
    view! {
        <Title text="boxoffice: live sale"/>
        <h1>{move || latest().map(|s| s.name).unwrap_or_else(|| "Live sale".to_owned())}</h1>
        <div class="toolbar">
            <A href="/organizer">"All events"</A>
            <a href=move || format!("/events/{}", id())>"Buyer page"</a>
            <span class=move || if latest().is_some_and(|s| s.on_sale) { "badge open" } else { "badge" }>
                {move || if latest().is_some_and(|s| s.on_sale) { "On sale" } else { "Not on sale" }}
            </span>
            <button id="sale-switch" class="primary" disabled=move || switch.pending().get() || latest().is_none()
                on:click=move |_| { switch.dispatch(!latest().is_some_and(|s| s.on_sale)); }>
                {move || if latest().is_some_and(|s| s.on_sale) { "Close the sale" } else { "Open the sale" }}
            </button>
            <span class="muted">"Updated every second"</span>
        </div>
        <p role="status" aria-live="polite">{move || problem.get().map(|e| view! { <Notice ok=false text=e/> })}</p>
        <Show when=move || !foreign.get()>
        <div class="stats">
            {stat("Seats free", "free", figure(|s| s.free.to_string()))}
            {stat("Seats held", "held", figure(|s| s.held.to_string()))}
            {stat("Seats sold", "sold", figure(|s| s.sold.to_string()))}
            {stat("Capacity", "capacity", figure(|s| s.capacity.to_string()))}
            {stat("Revenue", "revenue", figure(|s| s.revenue.clone()))}
            {stat("Requests decided", "decided", figure(|s| s.decided.to_string()))}
            {stat("In the waiting room", "waiting", figure(|s| s.waiting_room.map_or_else(|| "no waiting room".to_owned(), |w| w.0.to_string())))}
            {stat("Let in from the waiting room", "admitted", figure(|s| s.waiting_room.map_or_else(|| "–".to_owned(), |w| format!("{} ({} per minute)", w.1, w.2))))}
            <div class="stat" data-stat="rate">
                <div class="name">"Booking requests per second"</div>
                <div class="value">{move || per_second.read().last().map_or("…".to_owned(), |r| format!("{r:.1}"))}</div>
                <Sparkline values=per_second label="Booking requests per second, last two minutes"/>
            </div>
            <div class="stat">
                <div class="name">"Sold over time"</div>
                <Sparkline values=sold_line label="Seats sold, last two minutes"/>
            </div>
        </div>
        <div class="tables">
            <div class="scroll">
                <table aria-label="Bookings by status">
                    <thead><tr><th>"Status"</th><th>"Bookings"</th></tr></thead>
                    <tbody>
                        {move || latest().map(|s| s.by_status.into_iter().map(|(k, n)| view! { <tr><td>{k}</td><td>{n}</td></tr> }).collect_view())}
                    </tbody>
                </table>
            </div>
            <div class="scroll">
                <table aria-label="Rejections by reason" id="rejections">
                    <thead><tr><th>"Rejected because"</th><th>"Requests"</th></tr></thead>
                    <tbody>
                        {move || latest().map(|s| {
                            if s.rejections.is_empty() {
                                view! { <tr><td colspan="2" class="muted">"No rejections yet"</td></tr> }.into_any()
                            } else {
                                s.rejections.into_iter().map(|(k, n)| view! { <tr><td>{k}</td><td>{n}</td></tr> }).collect_view().into_any()
                            }
                        })}
                    </tbody>
                </table>
            </div>
        </div>
        <h2>"Seat map"</h2>
        <Suspense fallback=|| view! { <p>"Loading the seat map…"</p> }>
            {move || Suspend::new(async move {
                match layout.await {
                    Ok(p) => {
                        let initial = decode_states(&p.sections, &p.states);
                        let focus = RwSignal::new(first_with_seats(&p.sections, &initial));
                        let states = RwSignal::new(initial);
                        let live = RwSignal::new(false);
                        follow_feed(p.id.clone(), StoredValue::new(p.sections.clone()), states, live);
                        view! {
                            <SeatMap sections=p.sections categories=p.categories states
                                picked=RwSignal::new(Vec::new()) mine=Signal::derive(Vec::new)
                                focus interactive=false/>
                        }.into_any()
                    }
                    Err(e) => view! { <Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(decided: u64, at_ms: i64) -> SaleStats {
        SaleStats {
            name: String::new(),
            on_sale: true,
            capacity: 0,
            free: 0,
            held: 0,
            sold: 0,
            revenue: String::new(),
            decided,
            by_status: vec![],
            rejections: vec![],
            waiting_room: None,
            at_ms,
        }
    }

    #[test]
    fn bookings_per_second_come_from_consecutive_samples() {
        let h = [at(0, 0), at(10, 2_000), at(10, 4_000), at(40, 5_000)];
        assert_eq!(rates(&h), vec![5.0, 0.0, 30.0]);
        assert!(rates(&h[..1]).is_empty());
    }
}
