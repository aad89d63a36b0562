//! Pages, components and the server functions they call.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Style, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_params_map;
use leptos_router::path;
use serde::{Deserialize, Serialize};

/// An event in the list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventCard {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub starts_at: String,
    pub on_sale: bool,
    pub capacity: u64,
}

/// One seat on the map: `free`, `held` or `sold`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeatView {
    pub id: String,
    pub number: u32,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowView {
    pub label: String,
    pub seats: Vec<SeatView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SectionView {
    pub code: String,
    pub name: String,
    pub price: String,
    pub free: u64,
    pub rows: Vec<RowView>,
}

/// Everything the event page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPageData {
    pub id: String,
    pub name: String,
    pub venue: String,
    pub on_sale: bool,
    pub max_seats: u64,
    pub sections: Vec<SectionView>,
}

/// What became of a hold request, in words for the buyer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldResult {
    pub ok: bool,
    pub message: String,
    pub token: String,
}

/// The events on the platform, newest first.
#[server(prefix = "/rpc")]
pub async fn list_events() -> Result<Vec<EventCard>, ServerFnError> {
    crate::server::list_events().await.map_err(ServerFnError::new)
}

/// An event's layout and live seat states.
#[server(prefix = "/rpc")]
pub async fn event_page(id: String) -> Result<EventPageData, ServerFnError> {
    crate::server::event_page(&id).await.map_err(ServerFnError::new)
}

/// Holds `seats` for the buyer behind `token` (a new buyer when empty);
/// `key` makes a retried click the same booking.
#[server(prefix = "/rpc")]
pub async fn hold_seats(
    event: String,
    seats: Vec<String>,
    token: String,
    key: String,
) -> Result<HoldResult, ServerFnError> {
    crate::server::hold_seats(&event, &seats, &token, &key)
        .await
        .map_err(ServerFnError::new)
}

const CSS: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0; }
header { background: #14213d; color: #fff; padding: .75rem 1rem; }
header a { color: #fff; text-decoration: none; font-weight: 700; font-size: 1.2rem; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
.events { list-style: none; padding: 0; display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); }
.events li { background: #fff; border-radius: .5rem; padding: 1rem; box-shadow: 0 1px 3px #0002; }
.events a { font-weight: 600; font-size: 1.1rem; }
.badge { display: inline-block; font-size: .8rem; padding: .1rem .5rem; border-radius: 1rem; background: #e0e4ea; }
.badge.open { background: #c8f2d4; }
.section { background: #fff; border-radius: .5rem; padding: .75rem; margin-bottom: 1rem; box-shadow: 0 1px 3px #0002; overflow-x: auto; }
.section h2 { margin: 0 0 .5rem; font-size: 1.05rem; }
.row { display: flex; align-items: center; gap: 3px; margin: 3px 0; }
.row .label { width: 2rem; font-size: .8rem; color: #667; text-align: right; margin-right: .4rem; }
.seat { width: 1.6rem; height: 1.6rem; border-radius: .3rem .3rem .15rem .15rem; border: 1px solid #0003; font-size: .6rem; padding: 0; cursor: pointer; }
.seat.free { background: #4caf50; color: #fff; }
.seat.held { background: #ffb300; cursor: not-allowed; }
.seat.sold { background: #9e9e9e; cursor: not-allowed; }
.seat.selected { background: #1e88e5; color: #fff; outline: 2px solid #0d47a1; }
.seat:focus-visible { outline: 3px solid #000; }
.legend { display: flex; gap: 1rem; flex-wrap: wrap; font-size: .85rem; margin: .5rem 0 1rem; }
.legend span::before { content: ""; display: inline-block; width: .9rem; height: .9rem; border-radius: .2rem; margin-right: .3rem; vertical-align: -2px; }
.legend .free::before { background: #4caf50; } .legend .held::before { background: #ffb300; }
.legend .sold::before { background: #9e9e9e; } .legend .selected::before { background: #1e88e5; }
.bar { position: sticky; bottom: 0; background: #fff; padding: .75rem; border-top: 1px solid #ddd; display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
.bar button { background: #14213d; color: #fff; border: 0; border-radius: .4rem; padding: .6rem 1.2rem; font-size: 1rem; cursor: pointer; }
.bar button:disabled { opacity: .5; cursor: not-allowed; }
.message { padding: .5rem .75rem; border-radius: .4rem; }
.message.ok { background: #e3f6e8; } .message.error { background: #fde7e7; }
"#;

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Tells people and browser tests that the page is interactive now.
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title text="boxoffice"/>
        <Style>{CSS}</Style>
        <Router>
            <header>
                <a href="/">"boxoffice"</a>
            </header>
            <main>
                <Routes fallback=|| view! { <p>"This page does not exist."</p> }>
                    <Route path=path!("/") view=EventList/>
                    <Route path=path!("/events/:id") view=EventPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn EventList() -> impl IntoView {
    let events = Resource::new(|| (), |_| list_events());
    view! {
        <Title text="boxoffice: events on sale"/>
        <h1>"Events"</h1>
        <Suspense fallback=|| view! { <p>"Loading events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) if list.is_empty() => {
                        view! { <p>"No events yet."</p> }.into_any()
                    }
                    Ok(list) => {
                        view! {
                            <ul class="events">
                                {list
                                    .into_iter()
                                    .map(|e| {
                                        view! {
                                            <li>
                                                <a href=format!("/events/{}", e.id)>{e.name}</a>
                                                <p>{e.venue} " · " {e.starts_at} " · " {e.capacity} " seats"</p>
                                                <span class=if e.on_sale { "badge open" } else { "badge" }>
                                                    {if e.on_sale { "On sale" } else { "Not on sale" }}
                                                </span>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="message error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Milliseconds since the epoch in the browser (0 on the server, where
/// actions never run).
fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

#[component]
fn EventPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let page = Resource::new(id, event_page);
    let selected = RwSignal::new(Vec::<String>::new());
    let token = RwSignal::new(String::new());
    let message = RwSignal::new(None::<(bool, String)>);
    let hold = Action::new(move |seats: &Vec<String>| {
        let seats = seats.clone();
        let event = id();
        // The same click retried is the same booking; a new click is new.
        let key = format!("web-{}-{}", now_ms(), seats.join("+"));
        let token = token.get_untracked();
        async move { hold_seats(event, seats, token, key).await }
    });
    Effect::new(move |_| {
        if let Some(result) = hold.value().get() {
            match result {
                Ok(r) => {
                    token.set(r.token.clone());
                    if r.ok {
                        selected.set(Vec::new());
                    }
                    message.set(Some((r.ok, r.message)));
                }
                Err(e) => message.set(Some((false, e.to_string()))),
            }
            page.refetch();
        }
    });
    let toggle = move |seat: String| {
        selected.update(|s| {
            if let Some(i) = s.iter().position(|x| *x == seat) {
                s.remove(i);
            } else {
                s.push(seat);
            }
        });
    };
    view! {
        <Suspense fallback=|| view! { <p>"Loading the seat map…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) => {
                        let max = p.max_seats;
                        view! {
                            <Title text=format!("boxoffice: {}", p.name)/>
                            <h1>{p.name.clone()}</h1>
                            <p>
                                {p.venue.clone()} " · "
                                <span class=if p.on_sale { "badge open" } else { "badge" }>
                                    {if p.on_sale { "On sale" } else { "Not on sale" }}
                                </span> " · up to " {max} " seats per buyer"
                            </p>
                            <div class="legend" aria-hidden="true">
                                <span class="free">"free"</span>
                                <span class="selected">"your pick"</span>
                                <span class="held">"held"</span>
                                <span class="sold">"sold"</span>
                            </div>
                            {p
                                .sections
                                .into_iter()
                                .map(|s| {
                                    view! {
                                        <section class="section" aria-label=format!("Section {}", s.name)>
                                            <h2>{s.name.clone()} " · " {s.price.clone()} " · " {s.free} " free"</h2>
                                            {s
                                                .rows
                                                .into_iter()
                                                .map(|r| {
                                                    view! {
                                                        <div class="row">
                                                            <span class="label">{r.label.clone()}</span>
                                                            {r
                                                                .seats
                                                                .into_iter()
                                                                .map(|seat| {
                                                                    let SeatView { id, number, status } = seat;
                                                                    let free = status == "free";
                                                                    let mine = {
                                                                        let id = id.clone();
                                                                        move || selected.read().contains(&id)
                                                                    };
                                                                    let class = {
                                                                        let mine = mine.clone();
                                                                        let status = status.clone();
                                                                        move || {
                                                                            if mine() { "seat selected".to_owned() } else { format!("seat {status}") }
                                                                        }
                                                                    };
                                                                    let label = format!("Seat {id}, {status}");
                                                                    let clicked = id.clone();
                                                                    view! {
                                                                        <button
                                                                            class=class
                                                                            disabled=!free
                                                                            aria-label=label
                                                                            aria-pressed=move || mine().to_string()
                                                                            data-seat=id
                                                                            on:click=move |_| toggle(clicked.clone())
                                                                        >
                                                                            {number}
                                                                        </button>
                                                                    }
                                                                })
                                                                .collect_view()}
                                                        </div>
                                                    }
                                                })
                                                .collect_view()}
                                        </section>
                                    }
                                })
                                .collect_view()}
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="message error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
        <div class="bar">
            <span>
                {move || match selected.read().len() {
                    0 => "Pick seats on the map.".to_owned(),
                    1 => "1 seat picked".to_owned(),
                    n => format!("{n} seats picked"),
                }}
            </span>
            <button
                id="hold"
                disabled=move || selected.read().is_empty() || hold.pending().get()
                on:click=move |_| {
                    hold.dispatch(selected.get());
                }
            >
                {move || if hold.pending().get() { "Holding…" } else { "Hold seats" }}
            </button>
            <p role="status" aria-live="polite">
                {move || {
                    message
                        .get()
                        .map(|(ok, text)| {
                            view! { <span class=if ok { "message ok" } else { "message error" }>{text}</span> }
                        })
                }}
            </p>
        </div>
    }
}
