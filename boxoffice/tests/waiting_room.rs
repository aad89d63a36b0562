//! The virtual waiting room (docs/waiting-room.md) against real API
//! instances, Redis and the pipeline: early arrivals drawn in a random
//! order and admitted at the organizer's rate by every instance, bookings
//! refused without a turn (no token, someone else's, a forged one, too
//! early), one sign-in per place, places that survive a Redis that lost
//! them, and a buyer who polls in a loop answered 429.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, booked, call};

const PASSWORD: &str = "correct horse battery";

#[track_caller]
fn refused(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (want, Some(code)),
        "{body}"
    );
}

async fn join(stack: &Stack, api: &str, event: &str, token: &str) -> (u16, Value) {
    let url = format!("{api}/api/events/{event}/waiting-room");
    call(&stack.http, Method::POST, &url, Some(token), None, &[]).await
}

async fn standing(stack: &Stack, api: &str, event: &str, token: &str, place: &str) -> (u16, Value) {
    let url = format!("{api}/api/events/{event}/waiting-room");
    let headers = [("Waiting-Room-Token", place)];
    call(&stack.http, Method::GET, &url, Some(token), None, &headers).await
}

/// A booking request carrying the waiting-room token `place` (if any).
async fn book(
    stack: &Stack,
    api: &str,
    event: &str,
    token: &str,
    place: Option<&str>,
    seats: &[&str],
) -> (u16, Value) {
    let mut headers = vec![("Idempotency-Key", "k-1")];
    if let Some(p) = place {
        headers.push(("Waiting-Room-Token", p));
    }
    let url = format!("{api}/api/events/{event}/bookings");
    let body = json!({ "seats": seats });
    call(
        &stack.http,
        Method::POST,
        &url,
        Some(token),
        Some(body),
        &headers,
    )
    .await
}

/// The seconds a refusal's `Retry-After` asks the client to wait.
#[track_caller]
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["Retry-After"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn turn(place: &Value) -> DateTime<Utc> {
    place["turn_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a turn: {place}"))
}

fn place_token(place: &Value) -> String {
    place["token"].as_str().expect("a token").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn early_arrivals_are_drawn_at_random_and_let_in_at_the_rate_by_every_instance() {
    let stack = Stack::with_apis("waiting-room", &[("api-1", &[]), ("api-2", &[])]).await;
    let apis = [stack.api("api-1"), stack.api("api-2")];
    let organizer = stack.organizer_token(&apis[0]).await;
    let opens = Utc::now() + chrono::Duration::seconds(8);
    let room =
        json!({ "admissions_per_minute": 60, "opens_minutes_before": 10, "shopping_minutes": 1 });
    let event = stack
        .create_event_with(
            &apis[0],
            &organizer,
            json!({ "sale_opens_at": opens, "waiting_room": room }),
        )
        .await;

    // A waiting room that opens later refuses joiners until then.
    let later = stack
        .create_event_with(
            &apis[0],
            &organizer,
            json!({ "sale_opens_at": Utc::now() + chrono::Duration::minutes(30), "waiting_room": room }),
        )
        .await;
    let (_, buyer) = stack.buyer_token(&apis[0]).await;
    let (s, b) = join(&stack, &apis[0], &later, &buyer).await;
    refused(s, &b, 409, "waiting_room_not_open");

    // Twelve buyers arrive before the sale, on either instance.
    let mut buyers = Vec::new();
    for i in 0..12 {
        let api = &apis[i % 2];
        let (_, token) = stack.buyer_token(api).await;
        let (s, place) = join(&stack, api, &event, &token).await;
        assert_eq!(s, 200, "{place}");
        assert_eq!(place["state"], "waiting");
        assert!(
            place["ahead"].is_null(),
            "no order before the draw: {place}"
        );
        assert!(place["turn_at"].is_null(), "{place}");
        assert_eq!(place["waiting"], i as u64 + 1, "{place}");
        // Joining again keeps the place.
        let (_, again) = join(&stack, &apis[(i + 1) % 2], &event, &token).await;
        assert_eq!(again["token"], place["token"]);
        buyers.push((token, place_token(&place)));
    }

    // Before a turn, booking is refused, whatever the token.
    let (t0, p0) = &buyers[0];
    let (s, b) = book(&stack, &apis[0], &event, t0, None, &["A-1-1"]).await;
    refused(s, &b, 403, "waiting_room_required");
    let (s, b) = book(&stack, &apis[0], &event, t0, Some(&buyers[1].1), &["A-1-1"]).await;
    refused(s, &b, 403, "invalid_waiting_room_token");
    // The signature's last digit changed (to another: a token that ends in
    // 0 is not forged by writing 0).
    let last = if p0.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &p0[..p0.len() - 1]);
    let (s, b) = book(&stack, &apis[0], &event, t0, Some(&forged), &["A-1-1"]).await;
    refused(s, &b, 403, "invalid_waiting_room_token");
    let (s, b) = book(&stack, &apis[1], &event, t0, Some(p0), &["A-1-1"]).await;
    refused(s, &b, 403, "not_admitted_yet");

    // The sale opens: every early arrival gets a turn, one a second from
    // the opening, in an order that is not the order of arrival.
    tokio::time::sleep((opens - Utc::now()).to_std().unwrap_or_default()).await;
    let mut turns = Vec::new();
    for (i, (token, place)) in buyers.iter_mut().enumerate() {
        let (s, now) = standing(&stack, &apis[i % 2], &event, token, place).await;
        assert_eq!(s, 200, "{now}");
        turns.push(turn(&now));
        *place = place_token(&now);
    }
    let mut sorted = turns.clone();
    sorted.sort();
    for (k, t) in sorted.iter().enumerate() {
        let expected = opens + chrono::Duration::seconds(k as i64);
        assert!(
            (*t - expected).num_milliseconds().abs() < 1_000,
            "turn {k} at {t}, expected about {expected}"
        );
    }
    assert_eq!(sorted.iter().collect::<HashSet<_>>().len(), 12);
    assert_ne!(turns, sorted, "the draw kept the order of arrival");

    // A buyer who comes after the opening queues behind all of them.
    let (_, late) = stack.buyer_token(&apis[1]).await;
    let (s, late_place) = join(&stack, &apis[1], &event, &late).await;
    assert_eq!(s, 200, "{late_place}");
    assert!(turn(&late_place) > *sorted.last().unwrap(), "{late_place}");
    assert!(late_place["ahead"].as_u64().unwrap() >= 1, "{late_place}");

    // The first drawn books with its token; the last is not let in yet and
    // is told when to come back.
    let first = turns.iter().position(|t| *t == sorted[0]).unwrap();
    let last = turns.iter().position(|t| *t == sorted[11]).unwrap();
    let (tf, pf) = &buyers[first];
    let (s, b) = booked(
        &stack,
        &apis[1],
        &event,
        tf,
        "k-1",
        json!({ "seats": ["A-1-1"] }),
    )
    .await;
    refused(s, &b, 403, "waiting_room_required");
    let (s, b) = book(&stack, &apis[1], &event, tf, Some(pf), &["A-1-1"]).await;
    assert!(s == 201 || s == 202, "{s} {b}");
    let (tl, pl) = &buyers[last];
    let url = format!("{}/api/events/{event}/bookings", apis[0]);
    let res = stack
        .http
        .post(&url)
        .bearer_auth(tl)
        .header("Idempotency-Key", "k-1")
        .header("Waiting-Room-Token", pl.as_str())
        .json(&json!({ "seats": ["A-2-1"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let retry = retry_after(&res);
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    // The admitted buyer's token does not work for anyone else.
    let (s, b) = book(&stack, &apis[0], &event, tl, Some(pf), &["A-2-2"]).await;
    refused(s, &b, 403, "invalid_waiting_room_token");

    // The organizer sees the line.
    let url = format!("{}/api/events/{event}/stats", apis[1]);
    let (s, stats) = call(&stack.http, Method::GET, &url, Some(&organizer), None, &[]).await;
    assert_eq!(s, 200, "{stats}");
    let w = &stats["waiting_room"];
    assert_eq!(w["admissions_per_minute"], 60);
    assert_eq!(w["drawn"], 12);
    assert_eq!(
        w["waiting"].as_u64().unwrap() + w["admitted"].as_u64().unwrap(),
        13,
        "{w}"
    );
    assert!(w["admitted"].as_u64().unwrap() >= 1, "{w}");

    // Wait for the last drawn turn: then that buyer books.
    let wait = (sorted[11] - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let (s, b) = book(&stack, &apis[0], &event, tl, Some(pl), &["A-2-1"]).await;
    assert!(s == 201 || s == 202, "{s} {b}");
}

async fn sign_in(stack: &Stack, api: &str, email: &str) -> String {
    let url = format!("{api}/api/sessions");
    let body = json!({ "email": email, "password": PASSWORD });
    let (s, b) = call(&stack.http, Method::POST, &url, None, Some(body), &[]).await;
    assert_eq!(s, 200, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sign_in_holds_a_place_and_places_survive_a_redis_that_lost_them() {
    let stack = Stack::with_apis(
        "waiting-room-flush",
        &[
            ("api-1", &[]),
            ("api-2", &[("BOXOFFICE_LIMIT_WAITING_ROOM", "1/min:3")]),
        ],
    )
    .await;
    let api = stack.api("api-1");
    let organizer = stack.organizer_token(&api).await;
    let room =
        json!({ "admissions_per_minute": 6, "opens_minutes_before": 0, "shopping_minutes": 1 });
    let event = stack
        .create_event_with(&api, &organizer, json!({ "waiting_room": room }))
        .await;
    // A sale without a waiting room has none to join.
    let plain = stack.create_event_with(&api, &organizer, json!({})).await;

    let url = format!("{api}/api/accounts");
    let body = json!({ "email": "wren@example.com", "password": PASSWORD });
    let (s, b) = call(&stack.http, Method::POST, &url, None, Some(body), &[]).await;
    assert_eq!(s, 201, "{b}");
    let phone = sign_in(&stack, &api, "wren@example.com").await;
    let laptop = sign_in(&stack, &api, "wren@example.com").await;
    let (s, b) = join(&stack, &api, &plain, &phone).await;
    refused(s, &b, 404, "no_waiting_room");

    // The first in an empty line is let in at once; the account's place is
    // held by the sign-in that joined.
    let (s, first) = join(&stack, &api, &event, &phone).await;
    assert_eq!(
        (s, first["state"].as_str()),
        (200, Some("admitted")),
        "{first}"
    );
    let (s, b) = join(&stack, &api, &event, &laptop).await;
    refused(s, &b, 409, "place_held_elsewhere");
    let (s, b) = standing(
        &stack,
        &api,
        &event,
        &laptop,
        first["token"].as_str().unwrap(),
    )
    .await;
    refused(s, &b, 403, "invalid_waiting_room_token");

    // Signed out on the phone, the laptop takes the place over, same turn.
    let url = format!("{api}/api/sessions/current");
    let (s, _) = call(&stack.http, Method::DELETE, &url, Some(&phone), None, &[]).await;
    assert_eq!(s, 204);
    let (s, moved) = join(&stack, &api, &event, &laptop).await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["turn_at"], first["turn_at"]);
    let (s, b) = booked(
        &stack,
        &api,
        &event,
        &phone,
        "k-1",
        json!({ "seats": ["A-1-1"] }),
    )
    .await;
    refused(s, &b, 401, "signed_out");

    // Two more buyers queue behind, ten seconds apart.
    let (_, second) = stack.buyer_token(&api).await;
    let (_, second_place) = join(&stack, &api, &event, &second).await;
    assert_eq!(second_place["ahead"], 0, "{second_place}");
    assert_eq!(second_place["state"], "waiting");
    let gap = turn(&second_place) - turn(&first);
    assert!((9_900..=10_100).contains(&gap.num_milliseconds()), "{gap}");

    // Redis loses the waiting room (a flush, a failover to a stale replica).
    let keys = stack.forget_redis_keys("waiting-room:*").await;
    assert!(keys.iter().any(|k| k.ends_with(":line")), "{keys:?}");

    // The token puts its place back, and a newcomer queues behind it.
    let (s, back) = standing(
        &stack,
        &api,
        &event,
        &second,
        second_place["token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(back["turn_at"], second_place["turn_at"], "{back}");
    let (_, third) = stack.buyer_token(&api).await;
    let (_, third_place) = join(&stack, &api, &event, &third).await;
    assert!(turn(&third_place) > turn(&second_place), "{third_place}");
    // The laptop's booking goes through on its admitted token.
    let (s, b) = book(
        &stack,
        &api,
        &event,
        &laptop,
        moved["token"].as_str(),
        &["A-1-1"],
    )
    .await;
    assert!(s == 201 || s == 202, "{s} {b}");

    // A buyer who ignores Retry-After and asks in a loop is answered 429
    // once the burst is spent, with when to come back; others are not.
    let strict = stack.api("api-2");
    let token = third_place["token"].as_str().unwrap();
    for _ in 0..3 {
        let (s, b) = standing(&stack, &strict, &event, &third, token).await;
        assert_eq!(s, 200, "{b}");
    }
    let url = format!("{strict}/api/events/{event}/waiting-room");
    let res = stack
        .http
        .get(&url)
        .bearer_auth(&third)
        .header("Waiting-Room-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry = retry_after(&res);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    let second_token = second_place["token"].as_str().unwrap();
    let (s, b) = standing(&stack, &strict, &event, &second, second_token).await;
    assert_eq!(s, 200, "{b}");
}
