//! Accounts and sessions (docs/accounts.md) against real API instances,
//! PostgreSQL and Redis: sign-up, sign-in and sign-out seen by every
//! instance, revocation that survives a flushed cache, the per-buyer limit
//! per account, organizers who own their events, password guessing spread
//! over many networks, accounts minted in a loop, and tokens that expire.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, booked, call};

const PASSWORD: &str = "correct horse battery";

async fn post(stack: &Stack, url: &str, body: Value, from: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = from.map(|f| ("X-Forwarded-For", f)).into_iter().collect();
    call(&stack.http, Method::POST, url, None, Some(body), &headers).await
}

async fn sign_up(stack: &Stack, api: &str, email: &str, role: &str) -> (u16, Value) {
    let body = json!({ "email": email, "password": PASSWORD, "role": role });
    post(stack, &format!("{api}/api/accounts"), body, None).await
}

async fn sign_in(
    stack: &Stack,
    api: &str,
    email: &str,
    password: &str,
    from: &str,
) -> (u16, Value) {
    let body = json!({ "email": email, "password": password });
    post(stack, &format!("{api}/api/sessions"), body, Some(from)).await
}

/// The answer was a refusal with this status and code.
#[track_caller]
fn refused(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (want, Some(code)),
        "{body}"
    );
}

fn token(body: &Value) -> String {
    body["token"].as_str().expect("a token").to_owned()
}

async fn whoami(stack: &Stack, api: &str, token: &str) -> (u16, Value) {
    let url = format!("{api}/api/auth/session");
    call(&stack.http, Method::GET, &url, Some(token), None, &[]).await
}

async fn sign_out(stack: &Stack, api: &str, token: &str) -> (u16, Value) {
    let url = format!("{api}/api/sessions/current");
    call(&stack.http, Method::DELETE, &url, Some(token), None, &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_out_session_is_refused_by_every_instance_even_after_the_cache_is_flushed() {
    let stack = Stack::with_apis("accounts", &[("api-1", &[]), ("api-2", &[])]).await;
    let (api1, api2) = (stack.api("api-1"), stack.api("api-2"));

    // What a sign-up refuses, with clear codes.
    let (s, b) = sign_up(&stack, &api1, "not-an-address", "buyer").await;
    refused(s, &b, 422, "invalid_email");
    let body = json!({ "email": "ana@example.com", "password": "short" });
    let (s, b) = post(&stack, &format!("{api1}/api/accounts"), body, None).await;
    refused(s, &b, 422, "weak_password");
    let body = json!({ "email": "ana@example.com", "password": PASSWORD, "role": "admin" });
    let (s, b) = post(&stack, &format!("{api1}/api/accounts"), body, None).await;
    assert_eq!(s, 400, "an unknown role: {b}");

    let (s, ana) = sign_up(&stack, &api1, "  Ana@Example.com ", "buyer").await;
    assert_eq!(s, 201, "{ana}");
    assert_eq!(ana["email"], "ana@example.com");
    assert_eq!(ana["role"], "buyer");
    let account = ana["account_id"].as_str().unwrap().to_owned();
    let first = token(&ana);
    // One mailbox, one account, whatever the case and whichever instance.
    let (s, b) = sign_up(&stack, &api2, "ANA@example.COM", "buyer").await;
    refused(s, &b, 409, "email_taken");

    // The other instance knows the session.
    let (s, me) = whoami(&stack, &api2, &first).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["id"], account.as_str());
    assert_eq!(me["signed_in"], true);

    // Wrong password and unknown address: the same answer.
    let (s, b) = sign_in(
        &stack,
        &api2,
        "ana@example.com",
        "wrong horse battery",
        "198.51.100.1",
    )
    .await;
    refused(s, &b, 401, "wrong_credentials");
    let (s, b) = sign_in(
        &stack,
        &api2,
        "nobody@example.com",
        PASSWORD,
        "198.51.100.1",
    )
    .await;
    refused(s, &b, 401, "wrong_credentials");

    // A second session of the same account, on the other instance.
    let (s, again) = sign_in(&stack, &api2, "ANA@example.com", PASSWORD, "198.51.100.2").await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["account_id"], account.as_str());
    let second = token(&again);

    // The per-buyer limit (4 here) holds per account, over its sessions.
    let event = stack.create_event(&api1, 1, 5, 10, 600).await;
    let (s, held) = booked(
        &stack,
        &api1,
        &event,
        &first,
        "k1",
        json!({"section": "A", "quantity": 3}),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {held}");
    assert_eq!(held["buyer_id"], account.as_str());
    let (s, b) = booked(
        &stack,
        &api2,
        &event,
        &second,
        "k2",
        json!({"section": "A", "quantity": 2}),
    )
    .await;
    refused(s, &b, 409, "buyer_limit_exceeded");
    let booking = held["id"].as_str().unwrap().to_owned();
    let booking_url = |api: &str| format!("{api}/api/bookings/{booking}");

    // Signing out on one instance: the token is refused on both, at once.
    let (s, b) = sign_out(&stack, &api1, &first).await;
    assert_eq!(s, 204, "{b}");
    for api in [&api1, &api2] {
        let (s, b) = call(
            &stack.http,
            Method::GET,
            &booking_url(api),
            Some(&first),
            None,
            &[],
        )
        .await;
        refused(s, &b, 401, "signed_out");
    }
    let (s, b) = sign_out(&stack, &api2, &first).await;
    refused(s, &b, 401, "signed_out");
    // The other session goes on, and sees the account's booking.
    let (s, b) = call(
        &stack.http,
        Method::GET,
        &booking_url(&api2),
        Some(&second),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{b}");

    // The cache of session states is lost (a flushed or failed-over Redis):
    // PostgreSQL still says who signed out.
    let keys = stack.forget_redis_keys("session:*").await;
    assert_eq!(keys.len(), 2, "both sessions' states were cached: {keys:?}");
    for api in [&api1, &api2] {
        let (s, b) = whoami(&stack, api, &first).await;
        refused(s, &b, 401, "signed_out");
        let (s, b) = whoami(&stack, api, &second).await;
        assert_eq!(s, 200, "{b}");
    }

    // A token changed by hand, or signed with another secret, is refused.
    let forged = second.replacen("buyer", "organizer", 1);
    let (s, b) = whoami(&stack, &api1, &forged).await;
    refused(s, &b, 401, "invalid_token");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organizer_runs_only_their_own_events() {
    let stack = Stack::with_apis("owners", &[("api-1", &[])]).await;
    let api = stack.api("api-1");
    let (s, a) = sign_up(&stack, &api, "alice@venue.example", "organizer").await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = sign_up(&stack, &api, "bob@venue.example", "organizer").await;
    assert_eq!(s, 201, "{b}");
    let (alice, bob) = (token(&a), token(&b));
    let house = stack.organizer_token(&api).await;

    let event = stack.create_event_as(&api, &alice, 1, 3, 10, 600, 1).await;
    let (s, view) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{event}"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["spec"]["organizer_id"], a["account_id"], "{view}");

    let stats = format!("{api}/api/events/{event}/stats");
    let sale = format!("{api}/api/events/{event}/sale");
    for other in [&bob, &house] {
        let (s, b) = call(&stack.http, Method::GET, &stats, Some(other), None, &[]).await;
        refused(s, &b, 403, "not_your_event");
        let (s, b) = call(
            &stack.http,
            Method::POST,
            &sale,
            Some(other),
            Some(json!({"open": false})),
            &[],
        )
        .await;
        refused(s, &b, 403, "not_your_event");
    }
    let (s, b) = call(&stack.http, Method::GET, &stats, Some(&alice), None, &[]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["on_sale"], true,
        "the others' attempts changed nothing: {b}"
    );
    let (s, b) = call(
        &stack.http,
        Method::POST,
        &sale,
        Some(&alice),
        Some(json!({"open": false})),
        &[],
    )
    .await;
    assert!(s == 200 || s == 202, "{s} {b}");

    // A buyer account is not an organizer.
    let (s, buyer) = sign_up(&stack, &api, "carol@example.com", "buyer").await;
    assert_eq!(s, 201, "{buyer}");
    let (s, b) = call(
        &stack.http,
        Method::GET,
        &stats,
        Some(&token(&buyer)),
        None,
        &[],
    )
    .await;
    refused(s, &b, 403, "organizers_only");

    // The house organizer runs what it creates.
    let own = stack.create_event(&api, 1, 1, 5, 600).await;
    let (s, b) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{own}/stats"),
        Some(&house),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        &stack.http,
        Method::GET,
        &format!("{api}/api/events/{own}/stats"),
        Some(&alice),
        None,
        &[],
    )
    .await;
    refused(s, &b, 403, "not_your_event");
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_one_account_from_many_networks_is_throttled_per_account() {
    let stack = Stack::with_apis(
        "guessing",
        &[("api-1", &[("BOXOFFICE_LIMIT_ACCOUNT_SIGN_IN", "1/min:3")])],
    )
    .await;
    let api = stack.api("api-1");
    assert_eq!(
        sign_up(&stack, &api, "victim@example.com", "buyer").await.0,
        201
    );
    assert_eq!(
        sign_up(&stack, &api, "bystander@example.com", "buyer")
            .await
            .0,
        201
    );
    // A botnet: every guess from another address, so no address runs out.
    for (i, guess) in ["123456", "password1", "qwertyuiop"].iter().enumerate() {
        let (s, b) = sign_in(
            &stack,
            &api,
            "victim@example.com",
            guess,
            &format!("203.0.113.{i}"),
        )
        .await;
        refused(s, &b, 401, "wrong_credentials");
    }
    // The account is out of attempts, whatever the address and however the
    // address is written; even the right password waits.
    let (s, b) = sign_in(
        &stack,
        &api,
        " Victim@Example.com",
        PASSWORD,
        "203.0.113.99",
    )
    .await;
    refused(s, &b, 429, "rate_limited");
    assert!(b["message"].as_str().unwrap().contains("account"), "{b}");
    // Another account, from the same address, is not held up.
    let (s, b) = sign_in(
        &stack,
        &api,
        "bystander@example.com",
        PASSWORD,
        "203.0.113.99",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // Unknown addresses are counted alike, so the throttle tells nothing.
    for i in 0..3 {
        let (s, _) = sign_in(
            &stack,
            &api,
            "ghost@example.com",
            PASSWORD,
            &format!("203.0.113.{}", 10 + i),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, b) = sign_in(&stack, &api, "ghost@example.com", PASSWORD, "203.0.113.20").await;
    refused(s, &b, 429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_guests_accounts_minted_in_a_loop_get_one_client_no_further_and_tokens_expire() {
    let stack = Stack::with_apis(
        "no-guests",
        &[
            (
                "api-1",
                &[
                    ("BOXOFFICE_GUEST_BUYERS", "false"),
                    ("BOXOFFICE_LIMIT_NEW_BUYERS", "1/min:3"),
                ],
            ),
            // Guests allowed here, sessions of 2 s: same secret, same
            // database and cache.
            ("api-2", &[("BOXOFFICE_SESSION_SECONDS", "2")]),
        ],
    )
    .await;
    let (api1, api2) = (stack.api("api-1"), stack.api("api-2"));

    // A bot signs up in a loop from one network: three accounts, then 429s.
    let mut accounts = Vec::new();
    for i in 0..10 {
        let (s, b) = sign_up(&stack, &api1, &format!("bot{i}@example.com"), "buyer").await;
        match s {
            201 => accounts.push(token(&b)),
            _ => assert_eq!((s, b["code"].as_str()), (429, Some("rate_limited")), "{b}"),
        }
    }
    assert_eq!(accounts.len(), 3);
    // Each account holds at most the per-buyer limit: the bot holds at most
    // 3 x 4 seats of 50.
    let event = stack.create_event(&api1, 1, 5, 10, 600).await;
    let mut held = 0;
    for (i, t) in accounts.iter().enumerate() {
        for round in 0..2 {
            let (s, b) = booked(
                &stack,
                &api1,
                &event,
                t,
                &format!("{i}-{round}"),
                json!({"section": "A", "quantity": 4}),
            )
            .await;
            if s == 200 || s == 201 {
                held += b["seats"].as_array().unwrap().len();
            } else {
                refused(s, &b, 409, "buyer_limit_exceeded");
            }
        }
    }
    assert_eq!(held, 3 * 4);

    // No guest tokens here, and none minted elsewhere count here. (After
    // the loop: both instances share the network's bucket, at their rates.)
    let (s, b) = post(&stack, &format!("{api1}/api/auth/buyer"), json!({}), None).await;
    refused(s, &b, 403, "guests_disabled");
    let (_, guest) = stack.buyer_token(&api2).await;
    let (s, b) = whoami(&stack, &api1, &guest).await;
    refused(s, &b, 401, "guests_disabled");

    // A token lasts the session's time and no longer, on every instance.
    let (s, short) = sign_up(&stack, &api2, "brief@example.com", "buyer").await;
    assert_eq!(s, 201, "{short}");
    let brief = token(&short);
    assert_eq!(whoami(&stack, &api1, &brief).await.0, 200);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    for api in [&api1, &api2] {
        let (s, b) = whoami(&stack, api, &brief).await;
        refused(s, &b, 401, "token_expired");
    }
    let (s, b) = whoami(&stack, &api2, &guest).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (401, Some("token_expired")),
        "guests' tokens too: {b}"
    );
}
