//! The seat map, drawn from the venue layout, and the live feed that keeps
//! it current while others buy.

use leptos::prelude::*;

use crate::model::{SeatStates, SectionView};

/// The seat map: one button per seat, grouped by section and row. Seats in
/// `mine` are the visitor's booking; seats in `picked` are being chosen.
#[component]
pub fn SeatMap(
    sections: Vec<SectionView>,
    states: RwSignal<SeatStates>,
    picked: RwSignal<Vec<String>>,
    #[prop(into)] mine: Signal<Vec<String>>,
    /// Whether seats can be picked (buyers) or only watched (organizers).
    interactive: bool,
) -> impl IntoView {
    let toggle = move |seat: String| {
        picked.update(|p| {
            if let Some(i) = p.iter().position(|x| *x == seat) {
                p.remove(i);
            } else {
                p.push(seat);
            }
        })
    };
    view! {
        <div class="legend" aria-hidden="true">
            <span class="free">"free"</span>
            {interactive.then(|| view! { <span class="picked">"your pick"</span><span class="mine">"yours"</span> })}
            <span class="held">"held"</span>
            <span class="sold">"sold"</span>
        </div>
        <div class="stage" aria-hidden="true">"STAGE"</div>
        {sections
            .into_iter()
            .map(|s| {
                let code = s.code.clone();
                let free = move || {
                    let prefix = format!("{code}-");
                    let taken = states.read().keys().filter(|k| k.starts_with(&prefix)).count() as u64;
                    s.capacity.saturating_sub(taken)
                };
                view! {
                    <section class="section" aria-label=format!("Section {}", s.name)>
                        <h2>
                            {s.name.clone()} " · " {s.category.clone()} " " {s.price.clone()} " · "
                            <span data-free=s.code.clone()>{free}</span> " free"
                        </h2>
                        {s
                            .rows
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <div class="row" role="group" aria-label=format!("Row {}", r.label)>
                                        <span class="label" aria-hidden="true">{r.label.clone()}</span>
                                        {r
                                            .seats
                                            .into_iter()
                                            .map(|seat| seat_button(seat.id, seat.number, states, picked, mine, interactive, toggle))
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
}

fn seat_button(
    id: String,
    number: u32,
    states: RwSignal<SeatStates>,
    picked: RwSignal<Vec<String>>,
    mine: Signal<Vec<String>>,
    interactive: bool,
    toggle: impl Fn(String) + Copy + 'static,
) -> impl IntoView {
    let status = {
        let id = id.clone();
        move || {
            states
                .read()
                .get(&id)
                .cloned()
                .unwrap_or_else(|| "free".to_owned())
        }
    };
    let is_mine = {
        let id = id.clone();
        move || mine.read().contains(&id)
    };
    let is_picked = {
        let id = id.clone();
        move || picked.read().contains(&id)
    };
    let class = {
        let (status, is_mine, is_picked) = (status.clone(), is_mine.clone(), is_picked.clone());
        move || {
            let s = status();
            if is_mine() && s != "free" {
                "seat mine".to_owned()
            } else if is_picked() {
                "seat picked".to_owned()
            } else {
                format!("seat {s}")
            }
        }
    };
    let label = {
        let (id, status, is_mine) = (id.clone(), status.clone(), is_mine.clone());
        move || {
            let s = status();
            let shown = if is_mine() && s != "free" {
                "yours".to_owned()
            } else {
                s
            };
            format!("Seat {id}, {shown}")
        }
    };
    let disabled = {
        let status = status.clone();
        move || !interactive || status() != "free"
    };
    let clicked = id.clone();
    view! {
        <button
            class=class
            disabled=disabled
            aria-label=label
            aria-pressed=move || is_picked().to_string()
            data-seat=id
            on:click=move |_| toggle(clicked.clone())
        >
            {number}
        </button>
    }
}

/// One message of the API's seat feed.
#[derive(serde::Deserialize)]
struct Feed {
    changes: Vec<Change>,
}

#[derive(serde::Deserialize)]
struct Change {
    seat: String,
    status: String,
}

/// Applies a feed message (`seats` event) to the seat states.
pub fn apply_feed(states: &mut SeatStates, json: &str) -> bool {
    let Ok(feed) = serde_json::from_str::<Feed>(json) else {
        return false;
    };
    for c in feed.changes {
        if c.status == "free" {
            states.remove(&c.seat);
        } else {
            states.insert(c.seat, c.status);
        }
    }
    true
}

/// Keeps `states` in step with the event's seat feed while the calling
/// component lives; `live` tells whether the feed is connected. On
/// (re)connecting and when told it fell behind, it reloads every state, so
/// nothing between the page's snapshot and the feed is missed.
pub fn follow_feed(event: String, states: RwSignal<SeatStates>, live: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        type Handler = Closure<dyn FnMut(web_sys::MessageEvent)>;

        let Ok(source) = web_sys::EventSource::new(&format!("/live/events/{event}")) else {
            return;
        };
        let resync = move |event: String| {
            leptos::task::spawn_local(async move {
                if let Ok(s) = crate::rpc::seat_states(event).await {
                    states.set(s);
                }
            })
        };
        let on_hello: Handler = Closure::new({
            let event = event.clone();
            move |_| {
                live.set(true);
                resync(event.clone());
            }
        });
        let on_reload: Handler = Closure::new({
            let event = event.clone();
            move |_| resync(event.clone())
        });
        let on_seats: Handler = Closure::new(move |e: web_sys::MessageEvent| {
            if let Some(text) = e.data().as_string() {
                states.update(|s| {
                    apply_feed(s, &text);
                });
            }
        });
        let on_error: Handler = Closure::new(move |_| live.set(false));
        for (name, handler) in [
            ("hello", &on_hello),
            ("reload", &on_reload),
            ("seats", &on_seats),
        ] {
            let _ = source.add_event_listener_with_callback(name, handler.as_ref().unchecked_ref());
        }
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let kept = StoredValue::new_local((source, on_hello, on_reload, on_seats, on_error));
        on_cleanup(move || {
            kept.try_with_value(|(s, ..)| s.close());
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (event, states, live);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_messages_move_seats_between_states() {
        let mut states = SeatStates::new();
        assert!(apply_feed(
            &mut states,
            r#"{"event_id":"e","version":3,"changes":[{"seat":"A-1-1","status":"held","booking_id":null},{"seat":"A-1-2","status":"sold","booking_id":null}]}"#
        ));
        assert_eq!(states.get("A-1-1").map(String::as_str), Some("held"));
        assert!(apply_feed(
            &mut states,
            r#"{"changes":[{"seat":"A-1-1","status":"free"}]}"#
        ));
        assert!(!states.contains_key("A-1-1"));
        assert_eq!(states.len(), 1);
        assert!(!apply_feed(&mut states, "not json"));
    }
}
