//! The boxoffice web app. Buyers browse events and book seats on a seat map
//! drawn from the venue layout, live while others buy; organizers create
//! events, switch sales and watch them live, and see the system's queues and
//! pods. Pages render on the server (actix, the `boxoffice dashboard` role)
//! and hydrate in the browser (wasm); data comes from the API through server
//! functions, so the browser talks to one origin.

pub mod app;
pub mod charts;
pub mod model;
pub mod pages;
pub mod promtext;
pub mod rpc;
pub mod seatmap;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
