//! An event's page for buyers: the seat map, where seats are picked, held,
//! paid for or given back.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::app::{Notice, error_text, every, fresh_key, now_ms};
use crate::model::{
    BookingInfo, BuyerAnswer, EventPageData, RoomStanding, SeatRequest, countdown, decode_states,
    money,
};
use crate::rpc::{
    await_booking, cancel_booking, confirm_booking, event_page, request_seats, waiting_room,
};
use crate::seatmap::{SeatMap, first_with_seats, follow_feed, resync};

#[component]
pub fn EventPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let page = Resource::new(id, event_page);
    view! {
        <Suspense fallback=|| view! { <p>"Loading the seat map…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) if p.waiting_room_per_minute.is_some() => view! { <WaitingRoomGate page=p/> }.into_any(),
                    Ok(p) => view! { <Booking page=p/> }.into_any(),
                    Err(e) => view! { <h1>"Event"</h1><Notice ok=false text=error_text(&e)/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A sale with a waiting room: the buyer joins, watches their place move,
/// and books once their turn has come, until their shopping window ends.
#[component]
fn WaitingRoomGate(page: EventPageData) -> impl IntoView {
    let event = page.id.clone();
    let per_minute = page.waiting_room_per_minute.unwrap_or(0);
    let standing = RwSignal::new(None::<RoomStanding>);
    let problem = RwSignal::new(None::<String>);
    let now = RwSignal::new(now_ms());
    // When the last answer came: the estimate counts down from it between
    // answers.
    let answered_at = RwSignal::new(now_ms());
    let ask = Action::new(move |join: &bool| waiting_room(event.clone(), *join));
    Effect::new(move |_| match ask.value().get() {
        Some(Ok(s)) => {
            problem.set(None);
            answered_at.set(now_ms());
            standing.set(Some(s));
        }
        Some(Err(e)) => problem.set(Some(error_text(&e))),
        None => {}
    });
    ask.dispatch(false);
    let state = Memo::new(move |_| {
        standing
            .read()
            .as_ref()
            .map_or_else(|| "none".to_owned(), |s| s.state.clone())
    });
    // While waiting, ask every 3 s, and at once when the turn should have
    // come (well within the API's per-buyer limit, even from two tabs);
    // once admitted, the page only counts down the shopping window.
    every(Duration::from_secs(1), move || {
        now.set(now_ms());
        let waiting = state.get_untracked() == "waiting";
        let turn_due = standing
            .read_untracked()
            .as_ref()
            .and_then(|s| s.wait_s)
            .is_some_and(|w| now_ms() - answered_at.get_untracked() >= w as i64 * 1000);
        let due = turn_due || now.get_untracked() / 1000 % 3 == 0;
        if waiting && due && !ask.pending().get_untracked() {
            ask.dispatch(false);
        }
    });
    let name = page.name.clone();
    let page = StoredValue::new(page);
    let window_left = move || {
        standing
            .read()
            .as_ref()
            .and_then(|s| s.window_ends_ms)
            .and_then(|t| countdown(t, now.get()))
    };
    let position = move || {
        standing.read().as_ref().map(|s| match s.ahead {
            None => format!(
                "Everyone who joins before the sale opens ({} UTC) is let in in an order drawn at random then. {} in the waiting room.",
                s.sale_opens, s.waiting
            ),
            Some(0) => "You are next.".to_owned(),
            Some(1) => "1 buyer ahead of you.".to_owned(),
            Some(n) => format!("{n} buyers ahead of you."),
        })
    };
    let estimate = move || {
        let since_s = ((now.get() - answered_at.get()).max(0) / 1000) as u64;
        standing
            .read()
            .as_ref()
            .and_then(|s| s.wait_s)
            .map(|w| w.saturating_sub(since_s))
            .map(|w| format!("Your turn comes in about {} min {} s.", w / 60, w % 60))
    };
    view! {
        {move || match state.get().as_str() {
            "admitted" => view! {
                <p class="message ok" id="turn">
                    "Your turn has come: request seats within "
                    <span id="window-left">{move || window_left().unwrap_or_else(|| "00:00".to_owned())}</span>
                    ". Paying for seats you hold is not limited."
                </p>
                <Booking page=page.get_value()/>
            }
            .into_any(),
            "waiting" => view! {
                <Title text=format!("boxoffice: {name} (waiting room)")/>
                <h1>{name.clone()}</h1>
                <section class="waiting-room" id="waiting-room" aria-live="polite">
                    <h2>"You are in the waiting room"</h2>
                    <p id="position">{position}</p>
                    <p id="estimate">{estimate}</p>
                    <p class="muted">{format!("{per_minute} buyers are let in per minute. Keep this page open: it moves on by itself.")}</p>
                </section>
            }
            .into_any(),
            other => {
                let expired = other == "expired";
                view! {
                    <Title text=format!("boxoffice: {name}")/>
                    <h1>{name.clone()}</h1>
                    <section class="waiting-room">
                        <p>
                            {if expired {
                                "Your shopping window has ended. Join again to queue at the back.".to_owned()
                            } else {
                                format!("This sale has a waiting room: {per_minute} buyers are let in per minute, in turn.")
                            }}
                        </p>
                        <button id="join-waiting-room" class="primary" disabled=move || ask.pending().get()
                            on:click=move |_| { ask.dispatch(true); }>
                            {if expired { "Join again" } else { "Join the waiting room" }}
                        </button>
                    </section>
                }
                .into_any()
            }
        }}
        <p role="status">{move || problem.get().map(|text| view! { <Notice ok=false text/> })}</p>
    }
}

/// Whether a booking still owns its seats.
fn active(b: &BookingInfo) -> bool {
    matches!(b.status.as_str(), "held" | "confirmed")
}

#[component]
fn Booking(page: EventPageData) -> impl IntoView {
    let event = page.id.clone();
    let initial = decode_states(&page.sections, &page.states);
    let first_section = first_with_seats(&page.sections, &initial);
    let states = RwSignal::new(initial);
    let sections = StoredValue::new(page.sections.clone());
    let picked = RwSignal::new(Vec::<String>::new());
    let booking = RwSignal::new(None::<BookingInfo>);
    let message = RwSignal::new(None::<(bool, String)>);
    let live = RwSignal::new(false);
    let now = RwSignal::new(now_ms());
    follow_feed(event.clone(), sections, states, live);
    every(Duration::from_secs(1), move || now.set(now_ms()));
    // Seats taken by others meanwhile leave the pick, and the buyer is told.
    Effect::new(move |_| {
        let taken = states.read();
        let lost: Vec<String> = picked.with_untracked(|p| {
            p.iter()
                .filter(|s| taken.contains_key(*s))
                .cloned()
                .collect()
        });
        if !lost.is_empty() {
            picked.update(|p| p.retain(|s| !taken.contains_key(s)));
            // A refusal already on screen says more; keep it.
            if !matches!(message.get_untracked(), Some((false, _))) {
                let text = format!("{} was just taken by someone else.", lost.join(", "));
                message.set(Some((false, text)));
            }
        }
    });
    // After every answer the map is read again: the live feed may lag.
    let resync = {
        let event = event.clone();
        move || resync(event.clone(), sections, states)
    };
    let mine = Signal::derive(move || {
        booking
            .read()
            .as_ref()
            .filter(|b| active(b))
            .map(|b| b.seats.clone())
            .unwrap_or_default()
    });

    // A booking still in the queue: ask until it is decided.
    let wait = Action::new(move |id: &String| {
        let id = id.clone();
        async move {
            let mut answer = await_booking(id.clone()).await;
            for _ in 0..12 {
                match &answer {
                    Ok(BuyerAnswer {
                        booking: Some(b), ..
                    }) if b.status == "pending" => {
                        answer = await_booking(id.clone()).await;
                    }
                    _ => break,
                }
            }
            answer
        }
    });
    // `about_booking`: the answer is about the booking shown (paying or
    // cancelling it), which a refusal leaves with nothing more to do.
    let show = move |answer: Result<BuyerAnswer, ServerFnError>, about_booking: bool| match answer {
        Ok(a) if !a.ok => {
            message.set(Some((false, a.message)));
            if a.booking.is_some() || about_booking {
                booking.set(a.booking);
            }
            resync();
        }
        Ok(a) => {
            // A re-check that finds nothing new keeps the page as it is.
            let unchanged = booking.with_untracked(|old| {
                matches!((old, &a.booking), (Some(o), Some(b)) if o.id == b.id && o.status == b.status)
            });
            if unchanged {
                return;
            }
            message.set(Some((a.ok, a.message)));
            if let Some(b) = a.booking {
                if b.status == "pending" {
                    wait.dispatch(b.id.clone());
                } else if b.status == "held" {
                    picked.set(Vec::new());
                }
                // An answer without seats (still queued) keeps what we knew.
                let keep_seats = b.seats.is_empty();
                booking.update(|old| {
                    let seats = match (keep_seats, old.as_ref()) {
                        (true, Some(o)) if o.id == b.id => o.seats.clone(),
                        _ => b.seats.clone(),
                    };
                    *old = Some(BookingInfo { seats, ..b });
                });
            }
        }
        Err(e) => message.set(Some((false, error_text(&e)))),
    };
    let ask = Action::new({
        let event = event.clone();
        move |req: &SeatRequest| {
            let (event, req) = (event.clone(), req.clone());
            async move { request_seats(event, req, fresh_key("hold")).await }
        }
    });
    let confirm = Action::new(move |id: &String| confirm_booking(id.clone()));
    let cancel = Action::new(move |id: &String| cancel_booking(id.clone()));
    for (action, about_booking) in [
        (ask.value(), false),
        (wait.value(), false),
        (confirm.value(), true),
        (cancel.value(), true),
    ] {
        let show = show.clone();
        Effect::new(move |_| {
            if let Some(answer) = action.get() {
                show(answer, about_booking);
            }
        });
    }
    let busy = move || {
        ask.pending().get()
            || wait.pending().get()
            || confirm.pending().get()
            || cancel.pending().get()
    };
    let held = move || {
        booking
            .read()
            .as_ref()
            .filter(|b| b.status == "held")
            .cloned()
    };
    let held_id = Memo::new(move |_| held().map(|b| b.id));
    let currency = StoredValue::new(page.currency.clone());
    let held_total = move || held().map(|b| currency.with_value(|c| money(b.total_cents, c)));
    let left = move || {
        held()
            .and_then(|b| b.hold_expires_at_ms)
            .map(|t| countdown(t, now.get()))
    };

    // When the countdown ends, ask for the booking every 2 s until the system
    // has expired the hold (it does so on its own, shortly after), so the
    // page can say so: (booking id, last check, checks made).
    let expiry_checks = StoredValue::new((String::new(), 0i64, 0u32));
    Effect::new(move |_| {
        if !matches!(left(), Some(None)) {
            return;
        }
        let Some(id) = held_id.get_untracked() else {
            return;
        };
        let at = now.get_untracked();
        let (last_id, last_at, made) = expiry_checks.get_value();
        if last_id != id {
            // The countdown just ended: the first check comes 2 s later.
            expiry_checks.set_value((id, at, 0));
            return;
        }
        if made >= 30 || at - last_at < 2_000 || wait.pending().get_untracked() {
            return;
        }
        expiry_checks.set_value((id.clone(), at, made + 1));
        wait.dispatch(id);
    });
    let best_section = RwSignal::new(first_section);
    let best_quantity = RwSignal::new(2u16.min(page.max_seats.max(1) as u16));
    let max = page.max_seats;
    view! {
        <Title text=format!("boxoffice: {}", page.name)/>
        <h1>{page.name.clone()}</h1>
        <p>
            {page.venue.clone()} " · " {page.starts_at.clone()} " UTC · "
            <span class=if page.on_sale { "badge open" } else { "badge" }>
                {if page.on_sale { "On sale" } else { "Not on sale" }}
            </span>
            " · up to " {max} " seats per buyer · holds last " {page.hold.clone()} " · "
            <span class="muted" data-live=move || live.get().to_string()>
                {move || if live.get() { "live" } else { "connecting…" }}
            </span>
        </p>
        <form class="best" on:submit=move |ev| {
            ev.prevent_default();
            ask.dispatch(SeatRequest::BestAvailable {
                section: best_section.get_untracked(),
                quantity: best_quantity.get_untracked(),
            });
        }>
            <label>
                "Section"
                <select id="best-section" prop:value=move || best_section.get()
                    on:change=move |ev| best_section.set(event_target_value(&ev))>
                    {page.sections
                        .iter()
                        .map(|s| view! { <option value=s.code.clone()>{format!("{} ({})", s.name, s.price)}</option> })
                        .collect_view()}
                </select>
            </label>
            <label>
                "Seats"
                <input id="best-quantity" type="number" min="1" max=max.to_string()
                    prop:value=move || best_quantity.get().to_string()
                    on:input=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse() {
                            best_quantity.set(n);
                        }
                    }/>
            </label>
            <button id="best" class="secondary" type="submit" disabled=busy>"Find the best seats"</button>
        </form>
        <p class="muted">"Or pick seats on the map:"</p>
        <SeatMap sections=page.sections categories=page.categories states picked mine
            focus=best_section interactive=true/>
        <div class="bar">
            // Rebuilt only when the held booking changes, so the buttons keep
            // keyboard focus while the countdown ticks.
            {move || match held_id.get() {
                Some(id) => {
                    let (pay, give_back) = (id.clone(), id);
                    view! {
                        <span>
                            "Holding " {move || held().map(|b| b.seats.join(", "))} " · "
                            {held_total} " · "
                            <span class="countdown" id="countdown">
                                {move || match left() {
                                    Some(Some(t)) => format!("{t} left"),
                                    _ => "the hold ended".to_owned(),
                                }}
                            </span>
                        </span>
                        <button id="confirm" class="primary"
                            disabled=move || busy() || matches!(left(), Some(None))
                            on:click=move |_| { confirm.dispatch(pay.clone()); }>
                            {move || held_total().map(|t| format!("Pay {t} and confirm"))}
                        </button>
                        <button id="cancel" class="secondary" disabled=busy
                            on:click=move |_| { cancel.dispatch(give_back.clone()); }>
                            "Cancel"
                        </button>
                    }
                    .into_any()
                }
                None => view! {
                    <span>
                        {move || match picked.read().len() {
                            0 => "Pick seats on the map.".to_owned(),
                            1 => "1 seat picked".to_owned(),
                            n => format!("{n} seats picked"),
                        }}
                    </span>
                    <button id="hold" class="primary"
                        disabled=move || picked.read().is_empty() || busy()
                        on:click=move |_| { ask.dispatch(SeatRequest::Seats(picked.get_untracked())); }>
                        {move || if busy() { "Working…" } else { "Hold seats" }}
                    </button>
                }
                .into_any(),
            }}
            <p role="status" aria-live="polite">
                {move || message.get().map(|(ok, text)| view! { <Notice ok text/> })}
            </p>
        </div>
    }
}
