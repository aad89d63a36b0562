//! The event list: what is on sale.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::{Notice, error_text};
use crate::model::EventCard;
use crate::rpc::list_events;

#[component]
pub fn EventList() -> impl IntoView {
    let events = Resource::new(|| (), |_| list_events());
    view! {
        <Title text="boxoffice: events on sale"/>
        <h1>"Events"</h1>
        <Suspense fallback=|| view! { <p>"Loading events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) if list.is_empty() => view! { <p>"No events yet."</p> }.into_any(),
                    Ok(list) => view! { <EventCards list link="/events"/> }.into_any(),
                    Err(e) => view! { <Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Events as cards, each linking to `{link}/{id}`.
#[component]
pub fn EventCards(list: Vec<EventCard>, link: &'static str) -> impl IntoView {
    view! {
        <ul class="events">
            {list
                .into_iter()
                .map(|e| view! {
                    <li class="card">
                        <a href=format!("{link}/{}", e.id)>{e.name}</a>
                        <p>{e.venue} " · " {e.starts_at} " UTC · " {e.capacity} " seats"</p>
                        <span class=if e.on_sale { "badge open" } else { "badge" }>
                            {if e.on_sale { "On sale" } else { "Not on sale" }}
                        </span>
                    </li>
                })
                .collect_view()}
        </ul>
    }
}
