//! The boxoffice web app: buyers browse events and hold seats on a seat map
//! drawn from the venue layout. Pages render on the server (actix, the
//! `boxoffice dashboard` role) and hydrate in the browser (wasm); data comes
//! from the API through server functions, so the browser talks to one origin.

pub mod app;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
