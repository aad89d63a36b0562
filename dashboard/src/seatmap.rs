//! The seat map at any size: a venue overview (the sections as shapes
//! around the stage, coloured by price category, with live availability),
//! and the seats of the sections in view, drawn from the layout. A small
//! hall shows every seat at once; a larger venue draws only the section the
//! buyer zoomed into (a page of its rows at a time when it is large itself),
//! so the browser never lays out a stadium's worth of seats. The live feed
//! keeps both current while others buy.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::ops::Range;

use leptos::prelude::*;

use crate::model::{SeatStates, SectionView, decode_states, few_left, tally};

/// Seats drawn at seat level at once: a venue up to this size shows every
/// seat; above it, one section (or a page of its rows).
pub const SEAT_BUDGET: u64 = 1_500;

/// Seat sizes the zoom buttons step through, times the screen's own
/// (bigger on a phone, style.css).
const SEAT_SIZES: [f64; 4] = [0.75, 1.0, 1.3, 1.65];

/// The price categories' colours, in the event's order.
const CATEGORY_COLOURS: [&str; 8] = [
    "#1f5fbf", "#c2410c", "#0f766e", "#a21caf", "#4d7c0f", "#b45309", "#4338ca", "#be123c",
];

pub fn category_colour(index: usize) -> &'static str {
    CATEGORY_COLOURS[index % CATEGORY_COLOURS.len()]
}

/// One section's shape on the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// SVG path of the shape.
    pub path: String,
    /// Where its label goes.
    pub label: (f64, f64),
}

/// The overview's drawing: a shape per section, the stage, the view box.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrangement {
    pub zones: Vec<Zone>,
    /// Rings of sections: a small hall's overview is drawn smaller.
    pub rings: usize,
    /// x, y, width, height of the stage.
    pub stage: (f64, f64, f64, f64),
    pub width: f64,
    pub height: f64,
}

/// How many sections each ring holds: as few rings as fit them (ring `r`
/// has room for `3 + 2r`), the sections spread over them in proportion to
/// that room, so no ring is left with a few stretched ones.
fn ring_sizes(sections: usize) -> Vec<usize> {
    let mut room = Vec::new();
    while room.iter().sum::<usize>() < sections {
        room.push(3 + 2 * room.len());
    }
    let total: usize = room.iter().sum();
    let mut sizes: Vec<usize> = room.iter().map(|r| sections * r / total).collect();
    // What rounding down left over goes to the rings it shorted most.
    let mut order: Vec<usize> = (0..room.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((sections * room[i]) % total));
    let short = sections - sizes.iter().sum::<usize>();
    for &i in order.iter().take(short) {
        sizes[i] += 1;
    }
    sizes
}

/// Sections around a stage, as in a theatre or an arena end stage: rings
/// of sectors fanning out below the stage, the first sections (listed best
/// first) nearest to it, each ring read from left to right.
pub fn arrange(sections: usize) -> Arrangement {
    const INNER: f64 = 120.0;
    const DEPTH: f64 = 70.0;
    const GAP: f64 = 8.0;
    const FROM: f64 = 15.0;
    const SPAN: f64 = 150.0;
    let rings = ring_sizes(sections);
    let outer = INNER + rings.len().max(1) as f64 * (DEPTH + GAP);
    let width = 2.0 * outer + 40.0;
    let (cx, cy) = (width / 2.0, 70.0);
    let at = |radius: f64, degrees: f64| {
        let a = degrees * PI / 180.0;
        (cx + radius * a.cos(), cy + radius * a.sin())
    };
    let mut zones = Vec::with_capacity(sections);
    for (r, &count) in rings.iter().enumerate() {
        let inner = INNER + r as f64 * (DEPTH + GAP);
        let outer = inner + DEPTH;
        let step = SPAN / count as f64;
        let gap = (step * 0.08).min(1.5);
        for j in 0..count {
            // From the left (180 - FROM degrees) to the right (FROM).
            let a1 = 180.0 - FROM - step * j as f64 - gap;
            let a0 = 180.0 - FROM - step * (j + 1) as f64 + gap;
            let (p0, p1) = (at(outer, a0), at(outer, a1));
            let (p2, p3) = (at(inner, a1), at(inner, a0));
            zones.push(Zone {
                path: format!(
                    "M{:.1} {:.1}A{outer:.1} {outer:.1} 0 0 1 {:.1} {:.1}L{:.1} {:.1}A{inner:.1} {inner:.1} 0 0 0 {:.1} {:.1}Z",
                    p0.0, p0.1, p1.0, p1.1, p2.0, p2.1, p3.0, p3.1
                ),
                label: at((inner + outer) / 2.0, (a0 + a1) / 2.0),
            });
        }
    }
    Arrangement {
        zones,
        rings: rings.len(),
        stage: (cx - 90.0, 10.0, 180.0, 50.0),
        width,
        height: cy + outer + 20.0,
    }
}

/// The rows of a section split into pages of at most `budget` seats each
/// (a row is never split; a page holds at least one).
pub fn row_pages(section: &SectionView, budget: u64) -> Vec<Range<usize>> {
    let mut pages = Vec::new();
    let (mut start, mut seats) = (0, 0u64);
    for (i, row) in section.rows.iter().enumerate() {
        let n = u64::from(row.seats);
        if i > start && seats + n > budget {
            pages.push(start..i);
            (start, seats) = (i, 0);
        }
        seats += n;
    }
    if start < section.rows.len() {
        pages.push(start..section.rows.len());
    }
    pages
}

/// Free seats of a section, from its capacity and what is taken.
fn free_of(section: &SectionView, counts: &HashMap<String, (u64, u64)>) -> u64 {
    let (held, sold) = counts.get(&section.code).copied().unwrap_or_default();
    section.capacity.saturating_sub(held + sold)
}

/// What a section's shape says: its class and its accessible label.
pub fn zone_words(section: &SectionView, free: u64) -> (&'static str, String) {
    let what = format!(
        "Section {}, {} {}",
        section.name, section.category, section.price
    );
    if free == 0 {
        ("zone sold-out", format!("{what}, sold out"))
    } else if few_left(free, section.capacity) {
        (
            "zone few",
            format!("{what}, few left: {free} of {} free", section.capacity),
        )
    } else {
        (
            "zone",
            format!("{what}, {free} of {} free", section.capacity),
        )
    }
}

/// The seat map: the overview, then the seats of the sections in view.
/// `focus` is the section in view (shared with the best-available form);
/// seats in `mine` are the visitor's booking; seats in `picked` are being
/// chosen.
#[component]
pub fn SeatMap(
    sections: Vec<SectionView>,
    /// Price categories' names and prices, for the legend.
    categories: Vec<(String, String)>,
    states: RwSignal<SeatStates>,
    picked: RwSignal<Vec<String>>,
    #[prop(into)] mine: Signal<Vec<String>>,
    focus: RwSignal<String>,
    /// Whether seats can be picked (buyers) or only watched (organizers).
    interactive: bool,
) -> impl IntoView {
    let total: u64 = sections.iter().map(|s| s.capacity).sum();
    let whole = total <= SEAT_BUDGET;
    let counts = Memo::new(move |_| tally(&states.read()));
    let sections = StoredValue::new(sections);
    let zoom = RwSignal::new(1usize);
    let page = RwSignal::new(0usize);
    // A new section in view starts at its first rows.
    Effect::new(move |_| {
        focus.track();
        page.set(0);
    });
    let choose = move |code: String| {
        focus.set(code.clone());
        #[cfg(feature = "hydrate")]
        if whole {
            if let Some(el) = document().get_element_by_id(&format!("section-{code}")) {
                el.scroll_into_view();
            }
        }
    };
    let seat_size = move || {
        format!(
            "--zoom: {}",
            SEAT_SIZES[zoom.get().min(SEAT_SIZES.len() - 1)]
        )
    };
    view! {
        <Overview sections counts focus choose/>
        <div class="legend" aria-hidden="true">
            {categories
                .into_iter()
                .enumerate()
                .map(|(i, (name, price))| view! {
                    <span class="category" style=format!("--category: {}", category_colour(i))>{name} " " {price}</span>
                })
                .collect_view()}
        </div>
        <div class="legend" aria-hidden="true">
            <span class="free">"free"</span>
            {interactive.then(|| view! { <span class="picked">"your pick"</span><span class="mine">"yours"</span> })}
            <span class="held">"held"</span>
            <span class="sold">"sold"</span>
        </div>
        <div class="toolbar zoom" role="group" aria-label="Seat size">
            <button id="zoom-out" class="secondary" type="button" aria-label="Smaller seats"
                disabled=move || zoom.get() == 0
                on:click=move |_| zoom.update(|z| *z = z.saturating_sub(1))>"−"</button>
            <button id="zoom-in" class="secondary" type="button" aria-label="Bigger seats"
                disabled=move || { zoom.get() + 1 >= SEAT_SIZES.len() }
                on:click=move |_| zoom.update(|z| *z = (*z + 1).min(SEAT_SIZES.len() - 1))>"+"</button>
            {(!whole).then(|| view! {
                <span class="muted">"Pick a section on the map above to see its seats."</span>
            })}
        </div>
        <div class="seats" style=seat_size>
            {move || {
                let in_view: Vec<SectionView> = sections.with_value(|all| {
                    if whole {
                        all.clone()
                    } else {
                        let wanted = focus.get();
                        all.iter().filter(|s| s.code == wanted).cloned().collect()
                    }
                });
                in_view
                    .into_iter()
                    .map(|s| view! { <SectionSeats section=s states picked mine counts focus page interactive whole/> })
                    .collect_view()
            }}
        </div>
    }
}

/// The venue overview: every section as a shape in its place, coloured by
/// price category, with its free seats; clicking one (or Enter on it)
/// brings its seats into view.
#[component]
fn Overview(
    sections: StoredValue<Vec<SectionView>>,
    counts: Memo<HashMap<String, (u64, u64)>>,
    focus: RwSignal<String>,
    choose: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let all = sections.get_value();
    let plan = arrange(all.len());
    let (sx, sy, sw, sh) = plan.stage;
    view! {
        <svg class="overview" viewBox=format!("0 0 {:.0} {:.0}", plan.width, plan.height)
            style=format!("max-width: {}rem", (16 + 7 * plan.rings).min(56))
            role="group" aria-label="Venue overview: pick a section">
            <rect class="stage" x=sx y=sy width=sw height=sh rx="6"/>
            <text class="stage-label" x=sx + sw / 2.0 y=sy + sh / 2.0 + 6.0>"STAGE"</text>
            {all
                .into_iter()
                .zip(plan.zones)
                .map(|(s, zone)| {
                    let code = s.code.clone();
                    let colour = category_colour(s.category_index);
                    let free = {
                        let s = s.clone();
                        move || counts.with(|c| free_of(&s, c))
                    };
                    let words = {
                        let (s, free) = (s.clone(), free.clone());
                        move || zone_words(&s, free())
                    };
                    let selected = {
                        let code = code.clone();
                        move || focus.get() == code
                    };
                    let class = {
                        let (words, selected) = (words.clone(), selected.clone());
                        move || {
                            let (class, _) = words();
                            if selected() { format!("{class} selected") } else { class.to_owned() }
                        }
                    };
                    let label = {
                        let words = words.clone();
                        move || words().1
                    };
                    let free_text = {
                        let free = free.clone();
                        move || match free() {
                            0 => "sold out".to_owned(),
                            n => format!("{n} free"),
                        }
                    };
                    let (clicked, keyed) = (code.clone(), code.clone());
                    view! {
                        <g class=class role="button" tabindex="0" aria-label=label
                            aria-pressed=move || selected().to_string() data-zone=code.clone()
                            on:click=move |_| choose(clicked.clone())
                            on:keydown=move |ev| {
                                if ev.key() == "Enter" || ev.key() == " " {
                                    ev.prevent_default();
                                    choose(keyed.clone());
                                }
                            }>
                            <path d=zone.path fill=colour/>
                            <text class="zone-code" x=zone.label.0 y=zone.label.1 - 2.0>{code.clone()}</text>
                            <text class="zone-free" x=zone.label.0 y=zone.label.1 + 14.0>{free_text}</text>
                        </g>
                    }
                })
                .collect_view()}
        </svg>
    }
}

/// One section at seat level: its name and free seats, then its rows (a
/// page of them when the section is larger than [`SEAT_BUDGET`]).
#[component]
fn SectionSeats(
    section: SectionView,
    states: RwSignal<SeatStates>,
    picked: RwSignal<Vec<String>>,
    mine: Signal<Vec<String>>,
    counts: Memo<HashMap<String, (u64, u64)>>,
    focus: RwSignal<String>,
    page: RwSignal<usize>,
    interactive: bool,
    whole: bool,
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
    let pages = row_pages(&section, SEAT_BUDGET);
    let paged = pages.len() > 1;
    let page_count = pages.len();
    let section = StoredValue::new(section);
    let pages = StoredValue::new(pages);
    let free = move || section.with_value(|s| counts.with(|c| free_of(s, c)));
    let (code, name, category, price) = section.with_value(|s| {
        (
            s.code.clone(),
            s.name.clone(),
            s.category.clone(),
            s.price.clone(),
        )
    });
    let focused = {
        let code = code.clone();
        move || whole && focus.get() == code
    };
    let rows_shown = move || {
        let range = pages
            .with_value(|p| p.get(page.get().min(p.len().saturating_sub(1))).cloned())
            .unwrap_or(0..0);
        section.with_value(|s| {
            let first = s
                .rows
                .get(range.start)
                .map(|r| r.label.clone())
                .unwrap_or_default();
            let last = s
                .rows
                .get(range.end.saturating_sub(1))
                .map(|r| r.label.clone())
                .unwrap_or_default();
            (range, first, last)
        })
    };
    view! {
        <section class=move || if focused() { "section focused" } else { "section" }
            id=format!("section-{code}") aria-label=format!("Section {name}")>
            <h2>
                {name.clone()} " · " {category} " " {price} " · "
                <span data-free=code.clone()>{free}</span> " free"
            </h2>
            {paged.then(|| view! {
                <div class="toolbar rows-pager">
                    <button id="rows-previous" class="secondary" type="button"
                        disabled=move || page.get() == 0
                        on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"Rows before"</button>
                    <span id="rows-shown">{move || {
                        let (_, first, last) = rows_shown();
                        format!("Rows {first}–{last} (page {} of {page_count})", page.get() + 1)
                    }}</span>
                    <button id="rows-next" class="secondary" type="button"
                        disabled=move || { page.get() + 1 >= page_count }
                        on:click=move |_| page.update(|p| *p = (*p + 1).min(page_count - 1))>"Rows after"</button>
                </div>
            })}
            {move || {
                let (range, _, _) = rows_shown();
                section.with_value(|s| {
                    s.rows[range]
                        .iter()
                        .map(|r| {
                            view! {
                                <div class="row" role="group" aria-label=format!("Row {}", r.label)>
                                    <span class="label" aria-hidden="true">{r.label.clone()}</span>
                                    {s.seat_ids(r)
                                        .zip(1..)
                                        .map(|(id, number)| seat_button(id, number, states, picked, mine, interactive, toggle))
                                        .collect_view()}
                                </div>
                            }
                        })
                        .collect_view()
                })
            }}
        </section>
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
    // One lookup per seat when the states change; the seat's class, label
    // and state are redrawn only when its own state changed.
    let status = {
        let id = id.clone();
        Memo::new(move |_| {
            states.with(|s| match s.get(&id).map(String::as_str) {
                None => "free",
                Some("sold") => "sold",
                Some(_) => "held",
            })
        })
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
        let (is_mine, is_picked) = (is_mine.clone(), is_picked.clone());
        move || {
            let s = status.get();
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
        let (id, is_mine) = (id.clone(), is_mine.clone());
        move || {
            let s = status.get();
            let shown = if is_mine() && s != "free" { "yours" } else { s };
            format!("Seat {id}, {shown}")
        }
    };
    let disabled = move || !interactive || status.get() != "free";
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

/// The section a page shows first: the first with a free seat.
pub fn first_with_seats(sections: &[SectionView], states: &SeatStates) -> String {
    let counts = tally(states);
    sections
        .iter()
        .find(|s| free_of(s, &counts) > 0)
        .or(sections.first())
        .map(|s| s.code.clone())
        .unwrap_or_default()
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

/// Feed messages waiting for the next frame. An on-sale sends hundreds a
/// second; applied one by one, each would recount the venue and redraw the
/// seats in view, and a phone falls behind the feed. Applied once a frame,
/// all that arrived since the last, the work is bounded by the frame rate.
/// A page drawing no frames (a hidden tab) keeps at most [`Self::LIMIT`],
/// then forgets them and reads every seat again when it draws.
#[derive(Debug, Default)]
pub struct FeedQueue {
    messages: Vec<String>,
    stale: bool,
    scheduled: bool,
}

/// What a frame does with the queued feed.
#[derive(Debug, PartialEq, Eq)]
pub enum FeedFrame {
    /// Apply these messages, in order.
    Apply(Vec<String>),
    /// Too many were missed: read every seat again.
    Resync,
}

impl FeedQueue {
    /// Most messages kept for a page that draws no frames.
    pub const LIMIT: usize = 2_000;

    /// Queues a message; answers whether a frame must be asked for (none
    /// is pending yet).
    pub fn push(&mut self, message: String) -> bool {
        if !self.stale {
            if self.messages.len() >= Self::LIMIT {
                self.messages = Vec::new();
                self.stale = true;
            } else {
                self.messages.push(message);
            }
        }
        !std::mem::replace(&mut self.scheduled, true)
    }

    /// What the frame does; the queue starts again empty.
    pub fn frame(&mut self) -> FeedFrame {
        self.scheduled = false;
        if std::mem::take(&mut self.stale) {
            FeedFrame::Resync
        } else {
            FeedFrame::Apply(std::mem::take(&mut self.messages))
        }
    }
}

/// Reads every seat's state again.
pub fn resync(
    event: String,
    sections: StoredValue<Vec<SectionView>>,
    states: RwSignal<SeatStates>,
) {
    leptos::task::spawn_local(async move {
        if let Ok(codes) = crate::rpc::seat_states(event).await {
            states.set(sections.with_value(|s| decode_states(s, &codes)));
        }
    });
}

/// Keeps `states` in step with the event's seat feed while the calling
/// component lives; `live` tells whether the feed is connected. On
/// (re)connecting and when told it fell behind, it reloads every state, so
/// nothing between the page's snapshot and the feed is missed. One page
/// holds one feed: one connection to this server, which relays one from
/// the API.
pub fn follow_feed(
    event: String,
    sections: StoredValue<Vec<SectionView>>,
    states: RwSignal<SeatStates>,
    live: RwSignal<bool>,
) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen::closure::Closure;
        type Handler = Closure<dyn FnMut(web_sys::MessageEvent)>;

        let Ok(source) = web_sys::EventSource::new(&format!("/live/events/{event}")) else {
            return;
        };
        let on_hello: Handler = Closure::new({
            let event = event.clone();
            move |_| {
                live.set(true);
                resync(event.clone(), sections, states);
            }
        });
        let on_reload: Handler = Closure::new({
            let event = event.clone();
            move |_| resync(event.clone(), sections, states)
        });
        let queue = std::rc::Rc::new(std::cell::RefCell::new(FeedQueue::default()));
        let on_seats: Handler = Closure::new({
            let event = event.clone();
            move |e: web_sys::MessageEvent| {
                let Some(text) = e.data().as_string() else {
                    return;
                };
                if !queue.borrow_mut().push(text) {
                    return;
                }
                let (queue, event) = (queue.clone(), event.clone());
                request_animation_frame(move || {
                    let frame = queue.borrow_mut().frame();
                    match frame {
                        FeedFrame::Apply(messages) => states.update(|s| {
                            for m in &messages {
                                apply_feed(s, m);
                            }
                        }),
                        FeedFrame::Resync => resync(event, sections, states),
                    }
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
    let _ = (event, sections, states, live);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section of rows labelled 1.. with these many seats.
    fn section(code: &str, rows: &[u32]) -> SectionView {
        let labels: Vec<String> = (1..=rows.len()).map(|i| i.to_string()).collect();
        let rows: Vec<(&str, u32)> = labels
            .iter()
            .map(String::as_str)
            .zip(rows.iter().copied())
            .collect();
        crate::model::tests::section(code, &rows)
    }

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

    #[test]
    fn feed_messages_wait_for_one_frame_and_a_page_without_frames_reads_again() {
        let mut q = FeedQueue::default();
        assert!(q.push("a".into()), "the first message asks for a frame");
        assert!(!q.push("b".into()), "one frame is enough for both");
        assert_eq!(q.frame(), FeedFrame::Apply(vec!["a".into(), "b".into()]));
        assert!(
            q.push("c".into()),
            "after a frame the next message asks again"
        );
        assert_eq!(q.frame(), FeedFrame::Apply(vec!["c".into()]));
        assert_eq!(q.frame(), FeedFrame::Apply(vec![]));
        // A hidden tab draws no frames: it keeps a bounded queue, then
        // forgets it and reads every seat again at its next frame.
        assert!(q.push("0".into()));
        for i in 1..FeedQueue::LIMIT * 3 {
            assert!(!q.push(i.to_string()));
            assert!(q.messages.len() <= FeedQueue::LIMIT);
        }
        assert_eq!(q.frame(), FeedFrame::Resync);
        assert!(q.push("d".into()));
        assert_eq!(q.frame(), FeedFrame::Apply(vec!["d".into()]));
    }

    #[test]
    fn every_section_gets_a_shape_below_the_stage_and_inside_the_drawing() {
        for n in [1, 2, 3, 8, 40, 200] {
            let plan = arrange(n);
            assert_eq!(plan.zones.len(), n, "{n} sections");
            let (_, stage_y, _, stage_h) = plan.stage;
            for z in &plan.zones {
                let (x, y) = z.label;
                assert!(
                    x > 0.0 && x < plan.width,
                    "{n}: x {x} outside 0..{}",
                    plan.width
                );
                assert!(y > stage_y + stage_h && y < plan.height, "{n}: y {y}");
                assert!(z.path.starts_with('M') && z.path.ends_with('Z'));
            }
            // Nearer rings first: the first section is closest to the stage.
            let distance = |z: &Zone| {
                let (x, y) = z.label;
                ((x - plan.width / 2.0).powi(2) + (y - 70.0).powi(2)).sqrt()
            };
            let d: Vec<f64> = plan.zones.iter().map(distance).collect();
            assert!(
                d.windows(2).all(|w| w[0] <= w[1] + 1e-6),
                "{n}: rings out of order"
            );
            // Within a ring, left to right.
            for w in plan.zones.windows(2) {
                if (distance(&w[0]) - distance(&w[1])).abs() < 1e-6 {
                    assert!(
                        w[0].label.0 < w[1].label.0,
                        "{n}: a ring runs right to left"
                    );
                }
            }
        }
    }

    #[test]
    fn rings_are_filled_evenly() {
        assert_eq!(ring_sizes(3), vec![3]);
        assert_eq!(ring_sizes(4), vec![2, 2]);
        assert_eq!(ring_sizes(40), vec![3, 4, 6, 7, 9, 11]);
        for n in 1..300 {
            let sizes = ring_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|&s| s >= 1), "{n}: {sizes:?}");
            // Outer rings never hold fewer than inner ones.
            assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{n}: {sizes:?}");
        }
    }

    #[test]
    fn large_sections_are_drawn_a_page_of_rows_at_a_time() {
        let big = section("A", &[400; 10]);
        let pages = row_pages(&big, 1_500);
        assert_eq!(pages, vec![0..3, 3..6, 6..9, 9..10]);
        let small = section("B", &[20; 30]);
        assert_eq!(row_pages(&small, 1_500), vec![0..30]);
        // A row larger than the budget still gets a page of its own.
        let wide = section("C", &[500, 500]);
        assert_eq!(row_pages(&wide, 400), vec![0..1, 1..2]);
        assert!(row_pages(&section("D", &[]), 1_500).is_empty());
    }

    #[test]
    fn a_zone_says_how_many_seats_are_left() {
        let s = section("A", &[50; 4]);
        assert_eq!(zone_words(&s, 150).0, "zone");
        assert_eq!(zone_words(&s, 20).0, "zone few");
        assert!(zone_words(&s, 20).1.ends_with("few left: 20 of 200 free"));
        assert_eq!(zone_words(&s, 0).0, "zone sold-out");
    }

    #[test]
    fn the_first_section_shown_has_seats_left() {
        let sections = vec![section("A", &[2]), section("B", &[2])];
        let mut states = SeatStates::new();
        assert_eq!(first_with_seats(&sections, &states), "A");
        states.insert("A-1-1".into(), "sold".into());
        states.insert("A-1-2".into(), "held".into());
        assert_eq!(first_with_seats(&sections, &states), "B");
    }
}
