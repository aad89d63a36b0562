//! The event list: what is on sale.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::app::{Notice, error_text, every};
use crate::model::EventCard;
use crate::rpc::list_events;

#[component]
pub fn EventList() -> impl IntoView {
    // Read again every 10 s, so seats left and sold-out sales stay true
    // while the page is open (the first tick comes with hydration: skipped).
    let round = RwSignal::new(0u32);
    let ticks = StoredValue::new(0u32);
    every(std::time::Duration::from_secs(10), move || {
        ticks.update_value(|t| *t += 1);
        if ticks.get_value() > 1 {
            round.update(|r| *r += 1);
        }
    });
    let events = Resource::new(move || round.get(), |_| list_events());
    view! {
        <Title text="boxoffice: events on sale"/>
        <h1>"Events"</h1>
        <Transition fallback=|| view! { <p>"Loading events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(list) if list.is_empty() => view! { <p>"No events yet."</p> }.into_any(),
                    Ok(list) => view! { <EventCards list link="/events"/> }.into_any(),
                    Err(e) => view! { <Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Events as cards, each linking to `{link}/{id}`.
#[component]
pub fn EventCards(list: Vec<EventCard>, link: &'static str) -> impl IntoView {
    view! {
        <ul class="events">
            {list
                .into_iter()
                .map(|e| {
                    let (class, words) = e.availability();
                    view! {
                        <li class="card" data-event=e.id.clone()>
                            <a href=format!("{link}/{}", e.id)>{e.name}</a>
                            <p>{e.venue} " · " {e.starts_at} " UTC · " {e.capacity} " seats"</p>
                            <span class=class data-availability="">{words}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}
