//! The waiting room's Redis script against a model built on the domain's
//! rules (`boxoffice_domain::waiting_room`). Random joins, asks, restores
//! from tokens, second sign-ins and takeovers, a Redis that loses every
//! key or just one, a sale opened or closed by hand, and time passing run
//! on the real Redis; every answer, and the organizer's figures, must be
//! the model's. The model reads Redis' clock off each answer, so it judges
//! each call at the instant the script ran. It takes the turns
//! (`drawn_slot`, `next_slot`), who has had theirs (`drawn_admitted`), the
//! shopping window (`Turn::at`) and who may join (`joining`) from the
//! domain; the bookkeeping around them (where a restored token goes, who
//! holds a place, the counts) it keeps itself.

use std::collections::HashMap;
use std::time::Duration;

use boxoffice_backend::waiting_room::{Call, Figures, Mode, Refusal, Reply, Spot, WaitingRooms};
use boxoffice_domain::{Joining, SaleState, Turn, WaitingRoom};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// An event's waiting room as the domain's rules say it must be.
#[derive(Default)]
struct Model {
    draw: HashMap<Uuid, u64>,
    line: HashMap<Uuid, i64>,
    last: Option<i64>,
    holders: HashMap<Uuid, Option<Uuid>>,
    opened: Option<i64>,
    /// Early arrivals who joined again after their window.
    again: u64,
}

struct Sale {
    room: WaitingRoom,
    scheduled: i64,
    closes: i64,
    window: i64,
}

fn sale_state(hand: &str) -> SaleState {
    match hand {
        "open" => SaleState::Open,
        "closed" => SaleState::Closed,
        _ => SaleState::Scheduled,
    }
}

impl Model {
    fn opens(&self, sale: &Sale) -> i64 {
        self.opened
            .map_or(sale.scheduled, |o| o.min(sale.scheduled))
    }

    /// The holder's rank in the draw (Redis orders equal scores by member).
    fn rank(&self, holder: Uuid) -> u64 {
        let mine = (self.draw[&holder], holder.to_string());
        self.draw
            .iter()
            .filter(|(h, s)| (**s, h.to_string()) < mine)
            .count() as u64
    }

    fn turn_of(&self, sale: &Sale, opens: i64, now: i64, holder: Uuid, spot: Spot) -> Option<i64> {
        match spot {
            Spot::Turn(t) => Some(t),
            Spot::Drawn(_) if now < opens => None,
            Spot::Drawn(_) => Some(sale.room.drawn_slot(opens, self.rank(holder))),
        }
    }

    /// The next turn in the line, as `WaitingRoom::next_slot` gives it
    /// from the latest turn known.
    fn queue(&mut self, sale: &Sale, opens: i64, drawn: u64, now: i64, holder: Uuid) -> i64 {
        let known = self
            .last
            .into_iter()
            .chain(self.line.values().copied())
            .max();
        let turn = sale.room.next_slot(opens, drawn, known, now);
        self.last = Some(turn);
        self.line.insert(holder, turn);
        turn
    }

    fn apply(&mut self, sale: &Sale, c: &Call, now: i64) -> Reply {
        if c.sale == "open" && now < sale.scheduled && self.opened.is_none() {
            self.opened = Some(now);
        }
        let opens = self.opens(sale);
        let mut drawn = self.draw.len() as u64;
        let started = now >= opens || self.last.is_some() || !self.line.is_empty();
        let refuse = |r: Refusal, drawn: u64| Reply {
            outcome: Err(r),
            turn_ms: None,
            ahead: None,
            waiting: 0,
            drawn,
            now_ms: now,
        };
        if let Some(&h) = self.holders.get(&c.holder)
            && h != c.session
            && !(c.take_over_from.is_some() && h == c.take_over_from)
        {
            return refuse(Refusal::Elsewhere(h.unwrap_or_default()), drawn);
        }
        let mut spot = match (self.line.get(&c.holder), self.draw.get(&c.holder)) {
            (Some(&t), _) => Some(Spot::Turn(t)),
            (None, Some(&n)) => Some(Spot::Drawn(n)),
            (None, None) => None,
        };
        if spot.is_none() {
            spot = match c.restore {
                None => None,
                Some(Spot::Turn(t)) => {
                    self.line.insert(c.holder, t);
                    self.last = Some(self.last.map_or(t, |l| l.max(t)));
                    Some(Spot::Turn(t))
                }
                Some(Spot::Drawn(_)) if started => {
                    Some(Spot::Turn(self.queue(sale, opens, drawn, now, c.holder)))
                }
                Some(Spot::Drawn(n)) => {
                    self.draw.insert(c.holder, n);
                    drawn += 1;
                    Some(Spot::Drawn(n))
                }
            };
        }
        let mut again = false;
        if let (Some(s), Mode::Join) = (spot, c.mode)
            && let Some(turn) = self.turn_of(sale, opens, now, c.holder, s)
            && Turn::at(turn, sale.window, now) == Turn::Expired
        {
            self.line.remove(&c.holder);
            again = matches!(s, Spot::Drawn(_));
            spot = None;
        }
        let spot = match spot {
            Some(s) => s,
            None => {
                if c.mode != Mode::Join {
                    return refuse(Refusal::NoPlace, drawn);
                }
                let state = sale_state(&c.sale);
                match sale
                    .room
                    .joining(state, sale.scheduled, opens, sale.closes, now)
                {
                    Joining::Open => {}
                    Joining::NotYet(at) => return refuse(Refusal::NotOpen(at), drawn),
                    Joining::Closed => return refuse(Refusal::Closed, drawn),
                }
                if started {
                    self.again += u64::from(again);
                    Spot::Turn(self.queue(sale, opens, drawn, now, c.holder))
                } else {
                    self.draw.insert(c.holder, c.random);
                    drawn += 1;
                    Spot::Drawn(c.random)
                }
            }
        };
        self.holders.insert(c.holder, c.session);

        let turn = self.turn_of(sale, opens, now, c.holder, spot);
        let drawn_in = sale.room.drawn_admitted(opens, drawn, now);
        let line_after =
            |from: i64, to: i64| self.line.values().filter(|&&t| t > from && t < to).count() as u64;
        let waiting = drawn - drawn_in + line_after(now, i64::MAX);
        let ahead = turn.map(|t| match spot {
            _ if t <= now => 0,
            Spot::Drawn(_) => self.rank(c.holder).saturating_sub(drawn_in),
            Spot::Turn(_) => drawn - drawn_in + line_after(now, t),
        });
        Reply {
            outcome: Ok(spot),
            turn_ms: turn,
            ahead,
            waiting,
            drawn,
            now_ms: now,
        }
    }

    fn figures(&self, sale: &Sale, now: i64) -> Figures {
        let opens = self.opens(sale);
        let drawn = self.draw.len() as u64;
        let drawn_in = sale.room.drawn_admitted(opens, drawn, now);
        let line_in = self.line.values().filter(|&&t| t <= now).count() as u64;
        Figures {
            waiting: drawn - drawn_in + self.line.len() as u64 - line_in,
            admitted: drawn_in.saturating_sub(self.again) + line_in,
            drawn,
        }
    }
}

async fn redis_now(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

/// One buyer of the run: a guest (no session) or an account whose current
/// sign-in may change.
struct Buyer {
    id: Uuid,
    session: Option<Uuid>,
    /// What the newest token of the current sign-in says, as the API would
    /// sign it (the API takes no other sign-in's token).
    token: Option<Spot>,
}

const KEYS: [&str; 6] = ["draw", "line", "last", "holders", "opened", "again"];

/// The organizer's figures from the script are the model's, at the
/// instant Redis answered.
async fn figures_match(
    scripts: &WaitingRooms,
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &[String; 6],
    sale: &Sale,
    model: &Model,
    at: &str,
    log: &[String],
) {
    let (got, now) = scripts
        .figures_of(conn, keys, sale.scheduled, sale.room.interval_ms())
        .await
        .unwrap();
    assert_eq!(
        got,
        model.figures(sale, now),
        "{at}, figures at {now}: {log:#?}"
    );
}

/// Runs one seed's calls; counts in `paths` which way each went.
async fn run(
    seed: u64,
    scripts: &WaitingRooms,
    conn: &mut redis::aio::MultiplexedConnection,
    paths: &mut std::collections::BTreeMap<&'static str, u64>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let event = Uuid::new_v4();
    let keys = KEYS.map(|k| format!("bx-test-script:waiting-room:{{{event}}}:{k}"));
    let now0 = redis_now(conn).await;
    let per_minute = [1_000, 3_000, 6_000][seed as usize % 3];
    let sale = Sale {
        room: WaitingRoom {
            admissions_per_minute: per_minute,
            // Some runs take joiners only from the opening (no draw), some
            // close mid-run.
            opens_minutes_before: u32::from(seed % 4 != 1),
            shopping_minutes: 1,
        },
        scheduled: now0 + 250,
        closes: now0 + if seed % 4 == 2 { 500 } else { 3_600_000 },
        window: 200,
    };
    let mut buyers: Vec<Buyer> = (0..10)
        .map(|i| Buyer {
            id: Uuid::new_v4(),
            session: (i >= 4).then(Uuid::new_v4),
            token: None,
        })
        .collect();
    let mut model = Model::default();
    let mut hand = "scheduled";
    let mut log = Vec::new();
    for step in 0..150 {
        let pick: u32 = rng.random_range(0..100);
        let b = rng.random_range(0..buyers.len());
        let mut take_over_from = None;
        let (mode, restore) = match pick {
            0..=34 => (Mode::Join, None),
            35..=54 => (Mode::Status, buyers[b].token),
            55..=59 => (Mode::Status, None),
            60..=69 => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..80))).await;
                continue;
            }
            70..=71 => {
                let _: () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(conn)
                    .await
                    .unwrap();
                model = Model::default();
                log.push(format!("{step}: redis lost the waiting room"));
                continue;
            }
            72 => {
                // One key lost (an eviction): the last turn given, when a
                // hand-opened sale opened, or who holds which place.
                let k = [2, 4, 3][rng.random_range(0..3)];
                let _: () = redis::cmd("DEL")
                    .arg(&keys[k])
                    .query_async(conn)
                    .await
                    .unwrap();
                match k {
                    2 => model.last = None,
                    4 => model.opened = None,
                    _ => model.holders.clear(),
                }
                log.push(format!("{step}: redis lost {}", KEYS[k]));
                continue;
            }
            73..=79 if buyers[b].session.is_some() => {
                // A second sign-in of the account; sometimes it takes the
                // place over from the first (which the API does only once
                // that one signed out), sometimes from a session that no
                // longer holds it.
                let before = buyers[b].session;
                buyers[b].session = Some(Uuid::new_v4());
                buyers[b].token = None;
                take_over_from = match rng.random_range(0..3) {
                    0 => None,
                    1 => before,
                    _ => Some(Uuid::new_v4()),
                };
                (Mode::Join, None)
            }
            80..=82 => {
                hand = "open";
                continue;
            }
            83 => {
                hand = "closed";
                continue;
            }
            84..=86 => {
                hand = "scheduled";
                continue;
            }
            87..=92 => {
                // Time passed: the figures move with it.
                let at = format!("seed {seed}, step {step}");
                figures_match(scripts, conn, &keys, &sale, &model, &at, &log).await;
                continue;
            }
            _ => (Mode::Join, None),
        };
        let call = Call {
            holder: buyers[b].id,
            session: buyers[b].session,
            scheduled_ms: sale.scheduled,
            queue_opens_ms: sale.room.queue_opens_at_ms(sale.scheduled),
            closes_ms: sale.closes,
            interval_ms: sale.room.interval_ms(),
            random: rng.random::<u64>() >> 11,
            sale: hand.to_owned(),
            take_over_from,
            mode,
            restore,
            ttl_ms: 600_000,
            window_ms: sale.window,
        };
        let got = scripts.call(conn, &keys, &call).await.unwrap();
        let want = model.apply(&sale, &call, got.now_ms);
        log.push(format!(
            "{step}: buyer {b} {mode:?} restore {restore:?} sale {hand} take over {take_over_from:?} at +{} -> {got:?}",
            got.now_ms - now0
        ));
        assert_eq!(got, want, "seed {seed}, step {step}: {log:#?}");
        let seen = match &got.outcome {
            Ok(_) if restore.is_some() => "restored or asked with a token",
            Ok(_) if take_over_from.is_some() => "taken over",
            Ok(_) => "placed",
            Err(Refusal::Elsewhere(_)) => "held elsewhere",
            Err(Refusal::NotOpen(_)) => "not open yet",
            Err(Refusal::Closed) => "closed",
            Err(Refusal::NoPlace) => "no place",
        };
        *paths.entry(seen).or_default() += 1;
        if let Ok(spot) = got.outcome {
            buyers[b].token = Some(got.turn_ms.map_or(spot, Spot::Turn));
        }
        // The organizer's figures after every change.
        let at = format!("seed {seed}, step {step}");
        figures_match(scripts, conn, &keys, &sale, &model, &at, &log).await;
    }
    *paths.entry("early arrivals who joined again").or_default() += model.again;
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_script_gives_every_buyer_the_place_the_domain_rules_give() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let scripts = WaitingRooms::default();
    let mut paths = std::collections::BTreeMap::new();
    for seed in 0..16 {
        run(seed, &scripts, &mut conn, &mut paths).await;
    }
    // The runs went every way the script can go.
    eprintln!("{paths:#?}");
    for path in [
        "placed",
        "restored or asked with a token",
        "taken over",
        "held elsewhere",
        "not open yet",
        "closed",
        "no place",
        "early arrivals who joined again",
    ] {
        assert!(
            paths.get(path).copied().unwrap_or(0) > 0,
            "no run was {path}: {paths:#?}"
        );
    }
}
