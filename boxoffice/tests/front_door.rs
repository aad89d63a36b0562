//! The front door under abuse (docs/front-door.md): identities minted in a
//! loop, a buyer or a network hammering the booking calls, password
//! guessing, a client lying in `X-Forwarded-For`, oversized bodies, too many
//! live streams, thousands of slow and idle connections, and a deployment
//! left with the built-in secrets. Real API instances, broker, PostgreSQL
//! and Redis; the rate limits' buckets live in Redis and every instance
//! shares them.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, book, call};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request's status, `Retry-After` and JSON body.
async fn send(req: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// `POST /api/auth/buyer`, claiming to come from `from` if given.
async fn mint(stack: &Stack, api: &str, from: Option<&str>) -> (u16, Option<u64>, Value) {
    let mut req = stack.http.post(format!("{api}/api/auth/buyer"));
    if let Some(f) = from {
        req = req.header("X-Forwarded-For", f);
    }
    send(req).await
}

/// What a raw connection was answered, up to the server closing it (or
/// 10 s).
async fn read_answer(conn: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline.into(), conn.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_limited(what: &str, (status, retry_after, body): &(u16, Option<u64>, Value)) {
    assert_eq!(*status, 429, "{what}: {body}");
    assert_eq!(body["code"], "rate_limited", "{what}: {body}");
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "{what}: Retry-After in whole seconds: {retry_after:?}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("retry")),
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_minted_in_a_loop_are_limited_per_network_over_every_instance() {
    let stack = Stack::with_apis(
        "mint",
        &[
            ("api-1", &[("BOXOFFICE_LIMIT_NEW_BUYERS", "1/min:5")]),
            // Trusts no proxy: whatever a client writes in X-Forwarded-For
            // there, it is its own address.
            (
                "api-2",
                &[
                    ("BOXOFFICE_LIMIT_NEW_BUYERS", "1/min:5"),
                    ("BOXOFFICE_TRUSTED_PROXIES", ""),
                ],
            ),
        ],
    )
    .await;
    let (api1, api2) = (stack.api("api-1"), stack.api("api-2"));

    // A bot on this machine mints identities in a loop over both instances,
    // with a new made-up address in every request: five, then 429s.
    let mut minted = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        let answer = if i % 2 == 0 {
            mint(&stack, &api1, None).await
        } else {
            mint(&stack, &api2, Some(&format!("192.0.2.{i}"))).await
        };
        match answer.0 {
            201 => minted.push(answer.2["token"].as_str().unwrap().to_owned()),
            _ => {
                assert_limited(&format!("mint {i}"), &answer);
                refused += 1;
            }
        }
    }
    assert_eq!(minted.len(), 5, "the burst, shared by both instances");
    assert_eq!(refused, 15);

    // Each minted identity may hold up to the per-buyer limit, and no more:
    // a loop of identities is bounded by how many the network may mint.
    let event = stack.create_event(&api1, 1, 10, 10, 600).await;
    let mut held = 0;
    for (i, token) in minted.iter().enumerate() {
        let (s, b) = support::booked(
            &stack,
            &api1,
            &event,
            token,
            "all",
            json!({"section": "A", "quantity": 4}),
        )
        .await;
        assert!(s == 200 || s == 201, "{s} {b}");
        held += b["seats"].as_array().unwrap().len();
        let (s, b) = book(
            &stack,
            &api1,
            &event,
            token,
            "more",
            json!({"section": "A", "quantity": 1}),
        )
        .await;
        let (s, b) = support::decided(&stack, &api1, token, s, b).await;
        assert_eq!(s, 409, "identity {i}: {b}");
        assert_eq!(b["code"], "buyer_limit_exceeded");
    }
    assert_eq!(held, 5 * 4);

    // Behind the trusted web app, every visitor is counted apart...
    assert_eq!(mint(&stack, &api1, Some("203.0.113.9")).await.0, 201);
    // ...and an IPv6 visitor is its /64: rotating the rest of the address
    // gains nothing.
    let mut v6 = Vec::new();
    for i in 1..=8 {
        v6.push(mint(&stack, &api1, Some(&format!("2001:db8:0:1::{i:x}"))).await);
    }
    assert_eq!(v6.iter().filter(|a| a.0 == 201).count(), 5, "{v6:?}");
    assert_limited("the same /64", &v6[7]);
    assert_eq!(mint(&stack, &api1, Some("2001:db8:0:2::1")).await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn booking_calls_are_limited_per_buyer_per_network_and_per_event() {
    let stack = Stack::with_apis(
        "calls",
        &[
            ("api-buyer", &[("BOXOFFICE_LIMIT_BUYER", "6/min:3")]),
            ("api-address", &[("BOXOFFICE_LIMIT_ADDRESS", "1/min:4")]),
            ("api-event", &[("BOXOFFICE_LIMIT_EVENT", "1/min:4")]),
        ],
    )
    .await;
    let api = stack.api("api-buyer");
    let event = stack.create_event(&api, 2, 10, 10, 600).await;
    let other_event = stack.create_event(&api, 1, 2, 10, 600).await;
    let bookings = |api: &str, event: &str| format!("{api}/api/events/{event}/bookings");
    let attempt = |api: &str, event: &str, token: &str, key: &str, from: &str| {
        stack
            .http
            .post(bookings(api, event))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .header("X-Forwarded-For", from)
            .json(&json!({"section": "A", "quantity": 1}))
    };

    // One buyer, from many networks: three calls, then 429 until a token
    // has refilled (Retry-After says when, up to 10 s), then served again.
    let (_, buyer) = stack.buyer_token(&api).await;
    for i in 0..3 {
        let (s, _, b) = send(attempt(
            &api,
            &event,
            &buyer,
            &format!("b{i}"),
            &format!("198.51.100.{i}"),
        ))
        .await;
        assert!(matches!(s, 201 | 202), "call {i}: {s} {b}");
    }
    let limited = send(attempt(&api, &event, &buyer, "b3", "198.51.100.3")).await;
    assert_limited("a fourth call", &limited);
    // A confirmation or a cancellation counts too.
    let (s, b) = call(
        &stack.http,
        Method::DELETE,
        &format!("{api}/api/bookings/0190aaaa-0000-7000-8000-000000000000"),
        Some(&buyer),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 429, "{b}");
    tokio::time::sleep(Duration::from_secs(limited.1.unwrap())).await;
    let (s, _, b) = send(attempt(&api, &event, &buyer, "b4", "198.51.100.4")).await;
    assert!(matches!(s, 201 | 202), "after Retry-After: {s} {b}");

    // One network, many buyers: four calls, then 429; another network is
    // served.
    let api = stack.api("api-address");
    for i in 0..4 {
        let (_, token) = stack.buyer_token(&api).await;
        let (s, _, b) = send(attempt(&api, &event, &token, "k", "198.51.100.50")).await;
        assert!(matches!(s, 201 | 202), "buyer {i}: {s} {b}");
    }
    let (_, token) = stack.buyer_token(&api).await;
    assert_limited(
        "a fifth buyer from one network",
        &send(attempt(&api, &event, &token, "k", "198.51.100.50")).await,
    );
    let (s, _, b) = send(attempt(&api, &event, &token, "k", "198.51.100.51")).await;
    assert!(matches!(s, 201 | 202), "another network: {s} {b}");

    // One event, buyers from everywhere: four new bookings, then 429 for
    // that event only.
    let api = stack.api("api-event");
    for i in 0..4 {
        let (_, token) = stack.buyer_token(&api).await;
        let (s, _, b) = send(attempt(
            &api,
            &other_event,
            &token,
            "k",
            &format!("203.0.113.{i}"),
        ))
        .await;
        assert!(matches!(s, 201 | 202), "buyer {i}: {s} {b}");
    }
    let (_, token) = stack.buyer_token(&api).await;
    assert_limited(
        "a fifth booking of one event",
        &send(attempt(&api, &other_event, &token, "k", "203.0.113.99")).await,
    );
    let (s, _, b) = send(attempt(&api, &event, &token, "k2", "203.0.113.99")).await;
    assert!(matches!(s, 201 | 202), "another event: {s} {b}");

    let metrics = stack.metrics("api-event").await;
    assert!(
        metrics.contains("api_rate_limited_total{") && metrics.contains("limit=\"event\""),
        "refusals are counted by limit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_is_throttled_and_refused_while_redis_cannot_count_attempts() {
    let mut redis = support::proxy::Proxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let stack = Stack::with_apis(
        "signin",
        &[(
            "api-1",
            &[
                ("BOXOFFICE_LIMIT_SIGN_IN", "1/min:3"),
                ("REDIS_URL", redis_url.as_str()),
            ],
        )],
    )
    .await;
    let api = stack.api("api-1");
    let sign_in = |password: &str, from: &str| {
        stack
            .http
            .post(format!("{api}/api/auth/organizer"))
            .header("X-Forwarded-For", from)
            .json(&json!({ "password": password }))
    };
    for guess in ["123456", "password", "letmein"] {
        let (s, _, b) = send(sign_in(guess, "198.51.100.66")).await;
        assert_eq!(s, 401, "{b}");
    }
    // Out of attempts: even the right password waits.
    assert_limited(
        "a fourth attempt",
        &send(sign_in("organizer", "198.51.100.66")).await,
    );
    let (s, _, b) = send(sign_in("organizer", "198.51.100.67")).await;
    assert_eq!(s, 200, "another network signs in: {b}");

    // Redis unreachable: sign-in attempts cannot be counted, so none is
    // tried; a new buyer identity only shapes traffic and is still given.
    redis.cut();
    let (s, _, b) = send(sign_in("organizer", "198.51.100.68")).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["code"], "unavailable");
    let (s, _, b) = mint(&stack, &api, Some("198.51.100.68")).await;
    assert_eq!(s, 201, "{b}");
    redis.restore().await;
    let started = Instant::now();
    loop {
        let (s, _, b) = send(sign_in("organizer", "198.51.100.68")).await;
        if s == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{s} {b}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The API shares one Redis connection between all its requests
/// (`cache::Shared`): when it breaks, bookings are refused with a clear
/// `503` at once, none hangs, and the next calls after Redis is back
/// reconnect on their own.
#[tokio::test(flavor = "multi_thread")]
async fn bookings_are_503_while_the_shared_redis_connection_is_cut_and_recover_after() {
    let mut redis = support::proxy::Proxy::start("127.0.0.1:6379").await;
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let stack = Stack::with_apis(
        "cut-redis",
        &[("api-1", &[("REDIS_URL", redis_url.as_str())])],
    )
    .await;
    let api = stack.api("api-1");
    let event = stack.create_event(&api, 1, 4, 10, 600).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    let attempt = |key: &str| {
        stack
            .http
            .post(format!("{api}/api/events/{event}/bookings"))
            .bearer_auth(&buyer)
            .header("Idempotency-Key", key)
            .timeout(Duration::from_secs(15))
            .json(&json!({"section": "A", "quantity": 1}))
    };
    let (s, _, b) = send(attempt("before")).await;
    assert!(matches!(s, 201 | 202), "before the cut: {s} {b}");

    redis.cut();
    // Many at once, as in a spike: every one answered, each a 503 with a
    // reason, none left waiting on the broken connection.
    let cut_at = Instant::now();
    let during =
        futures::future::join_all((0..20).map(|i| send(attempt(&format!("cut-{i}"))))).await;
    // Bounded by the shared connection's own limits (one reconnect of at
    // most about 2.5 s, then the call fails), far below the client's 15 s.
    assert!(
        cut_at.elapsed() < Duration::from_secs(8),
        "answered late: {:?}",
        cut_at.elapsed()
    );
    for (s, _, b) in &during {
        assert_eq!(*s, 503, "while cut: {b}");
        assert_eq!(b["code"], "unavailable", "while cut: {b}");
    }

    redis.restore().await;
    let started = Instant::now();
    let mut key = 0;
    loop {
        key += 1;
        let (s, _, b) = send(attempt(&format!("after-{key}"))).await;
        if matches!(s, 201 | 202) {
            break;
        }
        assert_eq!(s, 503, "while reconnecting: {b}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no reconnect: {s} {b}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_413_and_live_streams_are_bounded_per_network() {
    let stack = Stack::with_apis(
        "bounds",
        &[("api-1", &[("BOXOFFICE_STREAMS_PER_CLIENT", "2")])],
    )
    .await;
    let api = stack.api("api-1");
    let event = stack.create_event(&api, 1, 2, 10, 600).await;
    let (_, buyer) = stack.buyer_token(&api).await;

    // Over the body limit, with a length announced: 413 with a reason
    // before a byte of the body is sent. Then streamed in chunks, never
    // announced: 413 once the limit is passed.
    let port: u16 = api.rsplit(':').next().unwrap().parse().unwrap();
    let head = |framing: &str| {
        format!(
            "POST /api/events/{event}/bookings HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {buyer}\r\nIdempotency-Key: huge\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n"
        )
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(head("Content-Length: 307200").as_bytes())
        .await
        .unwrap();
    let answer = read_answer(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(head("Transfer-Encoding: chunked").as_bytes())
        .await
        .unwrap();
    let chunk = format!("2000\r\n{}\r\n", "A".repeat(0x2000));
    // 40 chunks of 8 KiB: past the limit. The server may answer and close
    // before all of them are written.
    for _ in 0..40 {
        if conn.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let answer = read_answer(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "chunked: {answer}");
    assert!(answer.contains("payload_too_large"), "chunked: {answer}");

    // Two live seat maps per network here; a third waits for one to close.
    let stream_url = format!("{api}/api/events/{event}/seats/stream");
    let open = |from: &str| {
        stack
            .http
            .get(&stream_url)
            .header("X-Forwarded-For", from)
            .send()
    };
    let first = open("198.51.100.1").await.unwrap();
    let second = open("198.51.100.1").await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open("198.51.100.1").await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("Retry-After"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams");
    assert_eq!(open("198.51.100.2").await.unwrap().status(), 200);
    // The client goes away; its place is freed once the server notices.
    drop(first);
    let started = Instant::now();
    loop {
        let again = open("198.51.100.1").await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a closed stream's place is never freed"
        );
        drop(again);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_limited_per_network_and_long_polls_per_buyer() {
    let stack = Stack::with_apis(
        "reads",
        &[(
            "api-1",
            &[
                ("BOXOFFICE_LIMIT_READS", "2/s:10"),
                ("BOXOFFICE_LONG_POLLS_PER_BUYER", "2"),
            ],
        )],
    )
    .await;
    let api = stack.api("api-1");
    let event = stack.create_event(&api, 1, 2, 10, 600).await;
    let read = |path: String, from: &str| {
        send(
            stack
                .http
                .get(format!("{api}{path}"))
                .header("X-Forwarded-For", from),
        )
    };

    // A scraper reloading the seat map and the event in a loop from one
    // network: its burst of ten, then 429 with Retry-After, while another
    // network reads on.
    let scraper = "198.51.100.7";
    let mut served = 0;
    let refused = loop {
        let path = if served % 2 == 0 {
            format!("/api/events/{event}/seats")
        } else {
            format!("/api/events/{event}")
        };
        let answer = read(path, scraper).await;
        if answer.0 != 200 {
            break answer;
        }
        served += 1;
        assert!(served <= 10, "more reads than the burst were served");
    };
    assert_eq!(served, 10);
    assert_limited("the eleventh read", &refused);
    for path in [
        "/api/events".to_owned(),
        format!("/api/events/{event}/seats/stream"),
    ] {
        let answer = read(path.clone(), scraper).await;
        assert_limited(&path, &answer);
    }
    let other = read(format!("/api/events/{event}/seats"), "198.51.100.8").await;
    assert_eq!(other.0, 200, "another network is served: {:?}", other.2);
    // Told when to come back, and served then.
    tokio::time::sleep(Duration::from_secs(refused.1.unwrap())).await;
    let back = read(format!("/api/events/{event}/seats"), scraper).await;
    assert_eq!(back.0, 200, "served after Retry-After: {:?}", back.2);

    // Long polls: two per buyer wait here; a third is refused at once, not
    // left hanging; another buyer still waits; once the two are answered
    // the buyer may wait again.
    let (_, buyer) = stack.buyer_token(&api).await;
    let (_, other_buyer) = stack.buyer_token(&api).await;
    let poll = |token: &str, from: &str| {
        let url = format!("{api}/api/bookings/{}?wait_ms=3000", uuid::Uuid::new_v4());
        send(
            stack
                .http
                .get(url)
                .bearer_auth(token.to_owned())
                .header("X-Forwarded-For", from),
        )
    };
    let started = Instant::now();
    let waiting = tokio::spawn({
        let (first, second) = (poll(&buyer, "203.0.113.1"), poll(&buyer, "203.0.113.2"));
        async move { tokio::join!(first, second) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = poll(&buyer, "203.0.113.3").await;
    assert_eq!(third.0, 429, "{:?}", third.2);
    assert_eq!(third.2["code"], "too_many_waits");
    assert!(
        third.1.is_some_and(|s| s >= 1),
        "Retry-After: {:?}",
        third.1
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the third long poll was held instead of refused"
    );
    let elsewhere = poll(&other_buyer, "203.0.113.4").await;
    assert_eq!(
        elsewhere.2["code"], "unknown_booking",
        "another buyer waits and is answered"
    );
    let (first, second) = waiting.await.unwrap();
    for answer in [first, second] {
        assert_eq!(answer.0, 404, "{:?}", answer.2);
        assert_eq!(answer.2["code"], "unknown_booking");
    }
    let again = poll(&buyer, "203.0.113.5").await;
    assert_eq!(again.2["code"], "unknown_booking", "the places were freed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buyer_is_served_while_thousands_of_idle_and_slow_connections_are_open() {
    let stack = Stack::with_apis("slowloris", &[("api-1", &[])]).await;
    let api = stack.api("api-1");
    let port = api.rsplit(':').next().unwrap().to_owned();
    let event = stack.create_event(&api, 1, 5, 10, 600).await;

    // 1,500 connections that never send a byte, and 1,500 that send a
    // request head one byte at a time, never finishing it.
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for i in 0..3000 {
        let conn = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .await
            .expect("connect");
        if i % 2 == 0 {
            idle.push(conn);
        } else {
            slow.push(conn);
        }
    }
    // Twenty bytes over ten seconds each: past the server's time for a
    // request head.
    let dribble = tokio::spawn(async move {
        let head = b"POST /api/auth/buyer HTTP/1.1\r\n";
        for step in 0..20 {
            for conn in &mut slow {
                let _ = conn.write_all(&[head[step % head.len()]]).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        slow
    });

    // Meanwhile a buyer signs in, holds seats and pays, on time.
    let started = Instant::now();
    let buyer = tokio::time::timeout(Duration::from_secs(20), async {
        let (_, token) = stack.buyer_token(&api).await;
        support::hold_and_pay(
            &stack,
            &api,
            &event,
            &token,
            "k",
            json!({"seats": ["A-1-1", "A-1-2"]}),
        )
        .await
    })
    .await
    .expect("a buyer is served while the connections are held");
    assert_eq!(buyer["status"], "confirmed", "{buyer}");
    eprintln!(
        "[slowloris] with 1,500 idle and 1,500 slow connections open, a buyer signed in, held \
         two seats and paid in {} ms",
        started.elapsed().as_millis()
    );

    // The server closes what never completes a request instead of holding
    // it forever: every connection gets an end of stream, a 408 or a reset;
    // none is still open.
    async fn closed_by_the_server(conns: &mut [TcpStream], within: Duration) -> usize {
        let mut closed = 0;
        for conn in conns {
            let mut buf = [0u8; 512];
            if tokio::time::timeout(within, conn.read(&mut buf))
                .await
                .is_ok()
            {
                closed += 1;
            }
        }
        closed
    }
    assert_eq!(
        closed_by_the_server(&mut idle, Duration::from_secs(30)).await,
        1500,
        "idle connections are closed by the server"
    );
    let idle_closed = started.elapsed();
    let mut slow = dribble.await.unwrap();
    assert_eq!(
        closed_by_the_server(&mut slow, Duration::from_secs(30)).await,
        1500,
        "slow request heads are cut off by the server"
    );
    eprintln!(
        "[slowloris] every idle connection closed by the server {} ms after the buyer started, \
         every slow one {} ms after",
        idle_closed.as_millis(),
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_the_local_stack_built_in_secrets_are_refused_and_none_is_logged() {
    let mut stack = Stack::with_apis("secrets", &[]).await;
    let production = |secret: &str, password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .arg("api")
            .env("BOXOFFICE_ENV", "production")
            .env("BOXOFFICE_PORT", support::free_port().to_string())
            .env("BOXOFFICE_AUTH_SECRET", secret)
            .env("BOXOFFICE_ORGANIZER_PASSWORD", password)
            .output()
            .expect("run the api")
    };
    for (secret, password, named) in [
        (
            "local-development-secret",
            "a-password-of-our-own",
            "BOXOFFICE_AUTH_SECRET",
        ),
        (
            "too-short",
            "a-password-of-our-own",
            "BOXOFFICE_AUTH_SECRET",
        ),
        (
            "0123456789abcdef0123456789abcdef-k",
            "organizer",
            "BOXOFFICE_ORGANIZER_PASSWORD",
        ),
    ] {
        let out = production(secret, password);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "started with {named} {secret:?}: {said}"
        );
        assert!(said.contains(named), "names what is wrong: {said}");
    }

    // With secrets of its own it runs; neither appears in its log, whatever
    // is signed in with.
    let secret = "e2Vb1cQx9hT7rL0pW4sN8kD3mJ6yA5uF-secret";
    let password = "Fz8q-organizer-pw-Lm3x";
    stack
        .start_with(
            "api",
            "api-prod",
            &[
                ("BOXOFFICE_ENV", "production"),
                ("BOXOFFICE_AUTH_SECRET", secret),
                ("BOXOFFICE_ORGANIZER_PASSWORD", password),
            ],
        )
        .await;
    let api = stack.api("api-prod");
    for p in [password, "organizer", "wrong"] {
        let _ = send(
            stack
                .http
                .post(format!("{api}/api/auth/organizer"))
                .json(&json!({ "password": p })),
        )
        .await;
    }
    let (s, _, b) = send(
        stack
            .http
            .post(format!("{api}/api/auth/organizer"))
            .json(&json!({ "password": password })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let log = stack.log_tail("api-prod", 100_000);
    assert!(log.contains("api started"), "{log}");
    assert!(
        !log.contains(secret) && !log.contains(password),
        "a secret in the log:\n{log}"
    );
}
