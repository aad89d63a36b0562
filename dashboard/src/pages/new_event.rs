//! The organizers' form for a venue layout and an event.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use super::sign_in::OrganizersOnly;
use crate::app::{Notice, error_text};
use crate::model::{CategoryForm, NewEvent, SectionForm};
use crate::rpc::create_event;

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
    let parts = s("1");
    let room_rate = s("");
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
                parts: number(parts, "Parts")?,
                waiting_room_per_minute: match room_rate.get_untracked().trim() {
                    "" | "0" => None,
                    r => Some(r.parse::<u32>().map_err(|_| {
                        "Waiting room: buyers per minute must be a whole number.".to_owned()
                    })?),
                },
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
                    {text_input("parts".into(), "Parts (one seat-processor each)", parts, "number")}
                    {text_input("waiting-room-rate".into(), "Waiting room: buyers let in per minute (empty: none)", room_rate, "number")}
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
