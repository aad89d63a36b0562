//! The document, the routes and what every page shares.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Style, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::pages::account::AccountPage;
use crate::pages::event::EventPage;
use crate::pages::events::EventList;
use crate::pages::new_event::NewEventPage;
use crate::pages::operations::OperationsPage;
use crate::pages::organizer::OrganizerHome;
use crate::pages::sale::SalePage;

const CSS: &str = include_str!("style.css");

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
                <A href="/">"boxoffice"</A>
                <nav aria-label="Site">
                    <A href="/">"Events"</A>
                    <A href="/account">"Account"</A>
                    <A href="/organizer">"Organizers"</A>
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <h1>"Not found"</h1><p>"This page does not exist."</p> }>
                    <Route path=path!("/") view=EventList/>
                    <Route path=path!("/events/:id") view=EventPage/>
                    <Route path=path!("/account") view=AccountPage/>
                    <Route path=path!("/organizer") view=OrganizerHome/>
                    <Route path=path!("/organizer/events/new") view=NewEventPage/>
                    <Route path=path!("/organizer/events/:id") view=SalePage/>
                    <Route path=path!("/organizer/operations") view=OperationsPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Milliseconds since the epoch in the browser (0 on the server, where
/// nothing that needs the clock runs).
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

/// Runs `tick` now and then every `every` while the calling component lives
/// (in the browser only).
pub fn every(every: std::time::Duration, tick: impl Fn() + Clone + 'static) {
    #[cfg(feature = "hydrate")]
    {
        let first = tick.clone();
        Effect::new(move |_| first());
        if let Ok(handle) = set_interval_with_handle(tick, every) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (every, tick);
}

/// A message for the visitor: `ok` ones in green, others in red.
#[component]
pub fn Notice(ok: bool, text: String) -> impl IntoView {
    view! { <span class=if ok { "message ok" } else { "message error" }>{text}</span> }
}

/// A new idempotency key for one click: retries of that click reuse it.
pub fn fresh_key(what: &str) -> String {
    #[cfg(feature = "hydrate")]
    let noise = (js_sys::Math::random() * 1e12) as u64;
    #[cfg(not(feature = "hydrate"))]
    let noise = 0u64;
    format!("web-{what}-{}-{noise:x}", now_ms())
}

/// What a failed server function says, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => format!("The dashboard could not reach its server ({other}); try again."),
    }
}
