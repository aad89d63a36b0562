//! Organizers' pages, behind the organizer sign-in: their events, a form for
//! new ones, each sale live, and the operations view.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::app::{Notice, error_text, every};
use crate::buyer::EventCards;
use crate::charts::{Sparkline, push_bounded};
use crate::model::{CategoryForm, NewEvent, OpsSnapshot, SaleStats, SectionForm, human_bytes};
use crate::rpc::{
    create_event, event_page, is_organizer, list_events, live_sale, operations, set_sale, sign_in,
    sign_out,
};
use crate::seatmap::{SeatMap, follow_feed};

/// How many samples the live charts keep (about two minutes).
const HISTORY: usize = 120;

/// Shows `children` to signed-in organizers and the sign-in form to anyone
/// else; the data behind these pages is refused to them as well.
#[component]
fn OrganizersOnly(children: ChildrenFn) -> impl IntoView {
    let signed_in = Resource::new(|| (), |_| is_organizer());
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p>"Checking your sign-in…"</p> }>
            {move || Suspend::new(async move {
                match signed_in.await {
                    Ok(true) => children.with_value(|c| c()).into_any(),
                    _ => view! { <SignIn/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn reload_page() {
    #[cfg(feature = "hydrate")]
    let _ = window().location().reload();
}

#[component]
fn SignIn() -> impl IntoView {
    let password = RwSignal::new(String::new());
    let submit = Action::new(move |p: &String| sign_in(p.clone()));
    Effect::new(move |_| {
        if let Some(Ok(())) = submit.value().get() {
            reload_page();
        }
    });
    view! {
        <Title text="boxoffice: organizers only"/>
        <h1>"Organizers only"</h1>
        <p>"These pages are for event organizers. Sign in with the organizers' password."</p>
        <form class="form toolbar" on:submit=move |ev| {
            ev.prevent_default();
            submit.dispatch(password.get_untracked());
        }>
            <label>
                "Password"
                <input id="password" type="password" autocomplete="current-password"
                    on:input=move |ev| password.set(event_target_value(&ev))/>
            </label>
            <button id="sign-in" class="primary" type="submit" disabled=move || submit.pending().get()>"Sign in"</button>
        </form>
        <p role="status" aria-live="polite">
            {move || match submit.value().get() {
                Some(Err(e)) => Some(view! { <Notice ok=false text=error_text(&e)/> }),
                _ => None,
            }}
        </p>
    }
}

#[component]
pub fn OrganizerHome() -> impl IntoView {
    view! {
        <OrganizersOnly>
            <Title text="boxoffice: organizer"/>
            <h1>"Your events"</h1>
            <div class="toolbar">
                <A href="/organizer/events/new">"Create an event"</A>
                <A href="/organizer/operations">"Operations"</A>
                <button id="sign-out" class="secondary" on:click=move |_| {
                    leptos::task::spawn_local(async {
                        let _ = sign_out().await;
                        reload_page();
                    });
                }>"Sign out"</button>
            </div>
            <OrganizerEvents/>
        </OrganizersOnly>
    }
}

#[component]
fn OrganizerEvents() -> impl IntoView {
    let events = Resource::new(|| (), |_| list_events());
    view! {
        <Suspense fallback=|| view! { <p>"Loading events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) if list.is_empty() => view! { <p>"No events yet: create one."</p> }.into_any(),
                    Ok(list) => view! { <EventCards list link="/organizer/events"/> }.into_any(),
                    Err(e) => view! { <Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One price category line of the form.
#[derive(Clone, Copy)]
struct CategoryLine {
    key: usize,
    code: RwSignal<String>,
    name: RwSignal<String>,
    price: RwSignal<String>,
    currency: RwSignal<String>,
}

/// One section line of the form.
#[derive(Clone, Copy)]
struct SectionLine {
    key: usize,
    code: RwSignal<String>,
    name: RwSignal<String>,
    category: RwSignal<String>,
    rows: RwSignal<String>,
    seats: RwSignal<String>,
}

fn text_input(
    id: String,
    label: &'static str,
    value: RwSignal<String>,
    kind: &'static str,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <input id=id type=kind prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))/>
        </label>
    }
}

#[component]
pub fn NewEventPage() -> impl IntoView {
    view! {
        <OrganizersOnly>
            <NewEventForm/>
        </OrganizersOnly>
    }
}

#[component]
fn NewEventForm() -> impl IntoView {
    let s = |v: &str| RwSignal::new(v.to_owned());
    let name = s("");
    let venue = s("");
    let starts_at = s("");
    let max_seats = s("6");
    let hold_minutes = s("10");
    let open_now = RwSignal::new(true);
    let sale_opens_at = s("");
    let next_key = StoredValue::new(10usize);
    let category = move |code: &str, name: &str, price: &str| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        CategoryLine {
            key,
            code: s(code),
            name: s(name),
            price: s(price),
            currency: s("EUR"),
        }
    };
    let section = move |code: &str, name: &str, cat: &str, rows: &str, seats: &str| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        SectionLine {
            key,
            code: s(code),
            name: s(name),
            category: s(cat),
            rows: s(rows),
            seats: s(seats),
        }
    };
    let categories = RwSignal::new(vec![
        category("P", "Premium", "89.00"),
        category("S", "Standard", "49.00"),
    ]);
    let sections = RwSignal::new(vec![
        section("A", "Stalls", "P", "5", "12"),
        section("B", "Balcony", "S", "4", "10"),
    ]);
    // A sensible start: four weeks from now, 20:00 UTC.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if starts_at.get_untracked().is_empty() {
            let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
                js_sys::Date::now() + 28.0 * 86_400_000.0,
            ));
            starts_at.set(format!(
                "{:04}-{:02}-{:02}T20:00",
                d.get_utc_full_year(),
                d.get_utc_month() + 1,
                d.get_utc_date()
            ));
        }
    });
    let error = RwSignal::new(None::<String>);
    let create = Action::new(move |form: &NewEvent| create_event(form.clone()));
    let navigate = use_navigate();
    Effect::new(move |_| match create.value().get() {
        Some(Ok(id)) => navigate(&format!("/organizer/events/{id}"), Default::default()),
        Some(Err(e)) => error.set(Some(error_text(&e))),
        None => {}
    });
    let number = |v: RwSignal<String>, what: &str| -> Result<u16, String> {
        v.get_untracked()
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("{what} must be a whole number."))
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let form = (|| -> Result<NewEvent, String> {
            Ok(NewEvent {
                name: name.get_untracked(),
                venue: venue.get_untracked(),
                starts_at: starts_at.get_untracked(),
                max_seats_per_buyer: number(max_seats, "Seats per buyer")?,
                hold_minutes: number(hold_minutes, "Hold minutes")?,
                open_now: open_now.get_untracked(),
                sale_opens_at: sale_opens_at.get_untracked(),
                categories: categories
                    .get_untracked()
                    .into_iter()
                    .map(|c| CategoryForm {
                        code: c.code.get_untracked(),
                        name: c.name.get_untracked(),
                        price: c.price.get_untracked(),
                        currency: c.currency.get_untracked(),
                    })
                    .collect(),
                sections: sections
                    .get_untracked()
                    .into_iter()
                    .map(|l| {
                        Ok(SectionForm {
                            code: l.code.get_untracked(),
                            name: l.name.get_untracked(),
                            category: l.category.get_untracked(),
                            rows: number(l.rows, "Rows")?,
                            seats_per_row: number(l.seats, "Seats per row")?,
                        })
                    })
                    .collect::<Result<_, String>>()?,
            })
        })();
        match form {
            Ok(f) => {
                error.set(None);
                create.dispatch(f);
            }
            Err(e) => error.set(Some(e)),
        }
    };
    view! {
        <Title text="boxoffice: new event"/>
        <h1>"New event"</h1>
        <form class="form" on:submit=submit>
            <fieldset>
                <legend>"Event"</legend>
                <div class="line">
                    {text_input("event-name".into(), "Name", name, "text")}
                    {text_input("venue-name".into(), "Venue", venue, "text")}
                    {text_input("starts-at".into(), "Starts (UTC)", starts_at, "datetime-local")}
                </div>
                <div class="line">
                    {text_input("max-seats".into(), "Seats per buyer", max_seats, "number")}
                    {text_input("hold-minutes".into(), "Hold minutes", hold_minutes, "number")}
                    <label>
                        "Open the sale now"
                        <input id="open-now" type="checkbox" prop:checked=move || open_now.get()
                            on:change=move |ev| open_now.set(event_target_checked(&ev))/>
                    </label>
                    <label>
                        "or on (UTC)"
                        <input id="sale-opens-at" type="datetime-local"
                            disabled=move || open_now.get()
                            prop:value=move || sale_opens_at.get()
                            on:input=move |ev| sale_opens_at.set(event_target_value(&ev))/>
                    </label>
                </div>
            </fieldset>
            <fieldset>
                <legend>"Price categories"</legend>
                <For each=move || categories.get() key=|c| c.key let:c>
                    <div class="line">
                        {text_input(format!("category-code-{}", c.key), "Code", c.code, "text")}
                        {text_input(format!("category-name-{}", c.key), "Name", c.name, "text")}
                        {text_input(format!("category-price-{}", c.key), "Price", c.price, "text")}
                        {text_input(format!("category-currency-{}", c.key), "Currency", c.currency, "text")}
                        <button type="button" class="secondary" aria-label="Remove this category"
                            on:click=move |_| categories.update(|v| v.retain(|x| x.key != c.key))>"Remove"</button>
                    </div>
                </For>
                <button type="button" id="add-category" class="secondary"
                    on:click=move |_| { let c = category("", "", ""); categories.update(|v| v.push(c)); }>"Add a category"</button>
            </fieldset>
            <fieldset>
                <legend>"Sections (rows are numbered 1, 2, … from the stage)"</legend>
                <For each=move || sections.get() key=|l| l.key let:l>
                    <div class="line">
                        {text_input(format!("section-code-{}", l.key), "Code", l.code, "text")}
                        {text_input(format!("section-name-{}", l.key), "Name", l.name, "text")}
                        {text_input(format!("section-category-{}", l.key), "Category code", l.category, "text")}
                        {text_input(format!("section-rows-{}", l.key), "Rows", l.rows, "number")}
                        {text_input(format!("section-seats-{}", l.key), "Seats per row", l.seats, "number")}
                        <button type="button" class="secondary" aria-label="Remove this section"
                            on:click=move |_| sections.update(|v| v.retain(|x| x.key != l.key))>"Remove"</button>
                    </div>
                </For>
                <button type="button" id="add-section" class="secondary"
                    on:click=move |_| { let l = section("", "", "", "1", "10"); sections.update(|v| v.push(l)); }>"Add a section"</button>
            </fieldset>
            <div class="toolbar">
                <button id="create" class="primary" type="submit" disabled=move || create.pending().get()>
                    {move || if create.pending().get() { "Creating…" } else { "Create the event" }}
                </button>
                <span class="muted">
                    {move || {
                        let seats: u32 = sections.get().iter().map(|l| {
                            let n = |v: RwSignal<String>| v.get().trim().parse::<u32>().unwrap_or(0);
                            n(l.rows) * n(l.seats)
                        }).sum();
                        format!("{seats} seats in all")
                    }}
                </span>
            </div>
            <p role="status" aria-live="polite">
                {move || error.get().map(|e| view! { <Notice ok=false text=e/> })}
            </p>
        </form>
    }
}

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
    let refresh = move || {
        let event = id();
        leptos::task::spawn_local(async move {
            match live_sale(event).await {
                Ok(s) => {
                    problem.set(None);
                    history.update(|h| push_bounded(h, s, HISTORY));
                }
                Err(e) => problem.set(Some(error_text(&e))),
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
        <div class="stats">
            {stat("Seats free", "free", figure(|s| s.free.to_string()))}
            {stat("Seats held", "held", figure(|s| s.held.to_string()))}
            {stat("Seats sold", "sold", figure(|s| s.sold.to_string()))}
            {stat("Capacity", "capacity", figure(|s| s.capacity.to_string()))}
            {stat("Revenue", "revenue", figure(|s| s.revenue.clone()))}
            {stat("Requests decided", "decided", figure(|s| s.decided.to_string()))}
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
                        let states = RwSignal::new(p.states.clone());
                        let live = RwSignal::new(false);
                        follow_feed(p.id.clone(), states, live);
                        view! {
                            <SeatMap sections=p.sections states picked=RwSignal::new(Vec::new())
                                mine=Signal::derive(Vec::new) interactive=false/>
                        }.into_any()
                    }
                    Err(e) => view! { <Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

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
    let pod_series = move |pod: String, pick: fn(&crate::model::PodStats) -> Option<f64>| {
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
