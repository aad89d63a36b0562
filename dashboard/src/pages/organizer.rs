//! The organizers' home: their events and where to go next.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::events::EventCards;
use super::sign_in::{OrganizersOnly, reload_page};
use crate::app::{Notice, error_text};
use crate::rpc::{my_events, sign_out};

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
    let events = Resource::new(|| (), |_| my_events());
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
