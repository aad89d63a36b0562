//! The web app in real browsers: playwright-core drives Debian's chromium
//! (headless) against the whole system (API, processors, broker, PostgreSQL,
//! Redis) and the `dashboard` role serving the wasm client built by
//! scripts/build-web.sh. Screenshots land in `$CARGO_TARGET_DIR/screenshots`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::Stack;

/// `$CARGO_TARGET_DIR`, found from this test binary (`<target>/debug/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target dir above debug/deps")
        .to_path_buf()
}

fn screenshots() -> PathBuf {
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// The system with the web app in front; answers (stack, dashboard URL, API URL).
async fn system(name: &str) -> (Stack, String, String) {
    let site = target_dir().join("site");
    assert!(
        site.join("pkg/dashboard_bg.wasm").exists(),
        "no wasm client in {}: run scripts/build-web.sh",
        site.display()
    );
    let mut stack = Stack::new(name);
    let api = stack.start_all().await;
    // Without Prometheus here, the operations view reads every instance's /metrics.
    let targets: Vec<String> = ["reservation-1", "seat-1", "api-1"]
        .iter()
        .map(|i| format!("http://127.0.0.1:{}", stack.roles[*i].port))
        .collect();
    stack.extra_env = vec![
        ("BOXOFFICE_API_URL".into(), api.clone()),
        ("BOXOFFICE_SITE_DIR".into(), site.display().to_string()),
        ("BOXOFFICE_METRICS_TARGETS".into(), targets.join(",")),
    ];
    let port = stack.start("dashboard", "dashboard-1").await;
    (stack, format!("http://127.0.0.1:{port}"), api)
}

/// Free seats of a seat map (`GET /api/events/{id}/seats`), over its sections.
fn free_seats(map: &Value) -> u64 {
    map["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["free"].as_u64().unwrap())
        .sum()
}

/// Runs a browser script from tests/browser; answers its JSON summary.
fn node(stack: &Stack, script: &str, args: &[&str]) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    let out = tokio::task::block_in_place(|| {
        Command::new("node")
            .current_dir(&dir)
            .arg(script)
            .args(args)
            .output()
            .expect("node (tests/browser needs `npm ci`, done by scripts/stack.sh install)")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{stderr}\ndashboard log:\n{}\napi log:\n{}",
        stack.log_tail("dashboard-1", 30),
        stack.log_tail("api-1", 15)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("a JSON summary")
}

#[tokio::test(flavor = "multi_thread")]
async fn buyers_book_best_available_see_sales_live_and_cannot_reach_organizer_pages() {
    let (stack, dashboard, api) = system("browser-buyer").await;
    let event = stack.create_event(&api, 2, 6, 14, 600).await;
    let short_hold = stack.create_event(&api, 1, 3, 8, 4).await;
    let shots = screenshots();
    let summary = node(
        &stack,
        "buyer.mjs",
        &[
            &dashboard,
            &api,
            &event,
            &shots.display().to_string(),
            &short_hold,
        ],
    );
    eprintln!("[browser] {summary}; screenshots in {}", shots.display());
    assert_eq!(
        summary["best_available_confirmed"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(summary["second_browser_saw_sold"], true);
    assert_eq!(summary["taken_seat_refused"], true);
    assert_eq!(summary["organizer_pages_refused"], true);
    assert_eq!(summary["hold_expired_in_view"], true);
    assert_eq!(summary["limit_refused_and_hold_cancelled"], true);
    assert_eq!(summary["listed"], true);
    assert_eq!(
        summary["account_booked_and_signed_out"]["refused"], "signed_out",
        "{summary}"
    );

    // What the browser did is what the system recorded: two seats sold.
    let (_, seats) = stack.seat_map(&api, &event).await;
    for seat in summary["best_available_confirmed"].as_array().unwrap() {
        assert_eq!(seats["seats"][seat.as_str().unwrap()], "sold", "{seat}");
    }
}

/// A sale with a waiting room that lets one buyer in every ten seconds:
/// one is let in through the API first, so the browsers' buyers wait.
#[tokio::test(flavor = "multi_thread")]
async fn buyers_wait_in_the_waiting_room_see_their_place_move_and_book_when_let_in() {
    let (stack, dashboard, api) = system("browser-waiting-room").await;
    let organizer = stack.organizer_token(&api).await;
    let room = serde_json::json!({ "admissions_per_minute": 6, "opens_minutes_before": 0, "shopping_minutes": 10 });
    let event = stack
        .create_event_with(
            &api,
            &organizer,
            serde_json::json!({ "waiting_room": room }),
        )
        .await;
    let (_, first) = stack.buyer_token(&api).await;
    let (s, place) = support::call(
        &stack.http,
        reqwest::Method::POST,
        &format!("{api}/api/events/{event}/waiting-room"),
        Some(&first),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (s, place["state"].as_str()),
        (200, Some("admitted")),
        "{place}"
    );
    let shots = screenshots();
    let summary = node(
        &stack,
        "waiting-room.mjs",
        &[&dashboard, &event, &shots.display().to_string()],
    );
    eprintln!("[browser] {summary}; screenshots in {}", shots.display());
    assert_eq!(summary["a_position"], "You are next.", "{summary}");
    assert_eq!(summary["a_admitted"], true);
    assert_eq!(
        summary["b_positions"],
        serde_json::json!(["1 buyer ahead of you.", "You are next."])
    );
    assert_eq!(summary["b_admitted"], true);
    let (_, seats) = stack.seat_map(&api, &event).await;
    assert_eq!(seats["seats"]["A-1-1"], "sold", "{seats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organizer_creates_an_event_and_watches_its_sale_and_the_pods_live_and_another_cannot_open_it()
 {
    let (stack, dashboard, api) = system("browser-organizer").await;
    let shots = screenshots();
    let summary = node(
        &stack,
        "organizer.mjs",
        &[
            &dashboard,
            &api,
            &shots.display().to_string(),
            env!("CARGO_BIN_EXE_boxoffice"),
        ],
    );
    eprintln!("[browser] {summary}; screenshots in {}", shots.display());
    assert_eq!(summary["signed_in"], true);
    // The counts moved while the run went on, not only once it was over.
    let seen: Vec<u64> = summary["counts_seen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let last = summary["loadgen"]["seats_taken"].as_u64().unwrap();
    assert!(
        seen.iter().filter(|n| **n > 0 && **n < last).count() >= 2,
        "the sale view showed no intermediate counts: {seen:?}"
    );
    assert!(
        summary["fastest_bookings_per_s"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert_eq!(summary["sale_closed"], true);
    assert_eq!(summary["other_event_refused"], true, "{summary}");
    assert_eq!(
        summary["signed_out_token_refused"], "signed_out",
        "{summary}"
    );
    assert_eq!(summary["signed_in_again"], true, "{summary}");
    assert!(summary["partitions"].as_u64().unwrap() >= 4, "{summary}");
    assert_eq!(
        summary["dead_letters"], 0,
        "no dead letters in a clean run: {summary}"
    );
    let pods: Vec<&str> = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for pod in ["api-1", "seat-1", "reservation-1"] {
        assert!(pods.contains(&pod), "{pod} missing from {pods:?}");
    }

    // The event the form created is the one the API has, after the run.
    let event = summary["created"].as_str().unwrap();
    let (_, view) = stack.seat_map(&api, event).await;
    let free = free_seats(&view);
    assert_eq!(summary["final_free"], free);
    assert_eq!(summary["loadgen"]["invariants_hold"], true);
    assert_eq!(summary["loadgen"]["seats_taken"], 100 - free);
}

/// The web app's server functions carry the visitor's cookies, so a page of
/// another site must not be able to call them (CSRF); and a token cookie
/// set over HTTPS never travels over plain HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn server_functions_refuse_other_sites_and_token_cookies_are_secure_over_https() {
    let (stack, dashboard, _) = system("browser-csrf").await;
    let host = dashboard.trim_start_matches("http://").to_owned();
    let sign_in = |origin: Option<&str>, fetch_site: Option<&str>, https: bool| {
        let mut req = stack
            .http
            .post(format!("{dashboard}/rpc/sign_in"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("email=&password=organizer");
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        if let Some(s) = fetch_site {
            req = req.header("Sec-Fetch-Site", s);
        }
        if https {
            req = req.header("X-Forwarded-Proto", "https");
        }
        req.send()
    };
    for (origin, fetch_site) in [
        (Some("https://evil.example"), None),
        (Some(format!("http://{host}.evil.example").as_str()), None),
        (None, Some("cross-site")),
        (Some("null"), None),
    ] {
        let res = sign_in(origin, fetch_site, false).await.unwrap();
        assert_eq!(res.status(), 403, "{origin:?} {fetch_site:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "cross_origin");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let own = format!("http://{host}");
    let res = sign_in(Some(&own), Some("same-origin"), false)
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("bx_organizer="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on a laptop: {cookie}"
    );

    let res = sign_in(Some(&format!("https://{host}")), None, true)
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("; Secure"),
        "behind an HTTPS proxy: {cookie}"
    );
}

/// A stadium-sized venue: `sections` sections (`S01`..) of `rows` rows of
/// `seats` seats, two price categories, 50 seats per buyer.
fn stadium(sections: usize, rows: usize, seats: usize) -> Value {
    let sections: Vec<Value> = (1..=sections)
        .map(|i| {
            serde_json::json!({
                "code": format!("S{i:02}"), "name": format!("Block {i}"),
                "price_category": if i <= sections / 4 { "PREMIUM" } else { "STANDARD" },
                "rows": (1..=rows).map(|r| serde_json::json!({ "label": r.to_string(), "seats": seats })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "name": "Stadium night",
        "venue": { "name": "Test Stadium", "sections": sections },
        "price_categories": [
            { "code": "PREMIUM", "name": "Premium", "price_cents": 12900, "currency": "EUR" },
            { "code": "STANDARD", "name": "Standard", "price_cents": 7900, "currency": "EUR" },
        ],
        "max_seats_per_buyer": 50,
    })
}

/// Sells every seat of the sections given, two rows (50 seats) per buyer,
/// sixteen buyers at a time; waits until the seat map shows them sold.
async fn sell_sections(stack: &Stack, api: &str, event: &str, codes: &[String], rows: usize) {
    use futures::StreamExt;
    let orders: Vec<(String, Vec<String>)> = codes
        .iter()
        .flat_map(|code| {
            (1..=rows).step_by(2).map(move |r| {
                let seats = [r, r + 1]
                    .iter()
                    .flat_map(|row| (1..=25).map(move |n| format!("{code}-{row}-{n}")))
                    .collect();
                (format!("fill-{code}-{r}"), seats)
            })
        })
        .collect();
    let count = orders.len();
    futures::stream::iter(orders)
        .for_each_concurrent(16, |(key, seats)| async move {
            let (_, token) = stack.buyer_token(api).await;
            support::hold_and_pay(
                stack,
                api,
                event,
                &token,
                &key,
                serde_json::json!({ "seats": seats }),
            )
            .await;
        })
        .await;
    eprintln!("[browser] sold {count} orders of 50 seats in {codes:?}");
}

/// Issue 15: the seat map at stadium size. 20,000 seats in 40 sections;
/// all but two sold. A buyer on a phone finds a section with seats left on
/// the overview, zooms in, picks two seats by touch and by keyboard, holds
/// and pays; a second browser sees them turn sold live; the event list says
/// "few left", then "sold out" once the rest is sold.
#[tokio::test(flavor = "multi_thread")]
async fn a_phone_buyer_finds_seats_on_a_stadium_overview_and_books_while_the_list_tells_the_truth()
{
    let (stack, dashboard, api) = system("browser-stadium").await;
    let organizer = stack.organizer_token(&api).await;
    let (sections, rows, seats) = (40, 20, 25);
    let event = stack
        .create_event_with(&api, &organizer, stadium(sections, rows, seats))
        .await;
    let sold: Vec<String> = (1..=sections - 2).map(|i| format!("S{i:02}")).collect();
    sell_sections(&stack, &api, &event, &sold, rows).await;
    let (_, map) = stack.seat_map(&api, &event).await;
    let free = free_seats(&map);
    assert_eq!(free, 1_000, "two sections left free");
    let shots = screenshots();
    let summary = node(
        &stack,
        "stadium.mjs",
        &[&dashboard, &api, &event, &shots.display().to_string()],
    );
    eprintln!("[browser] {summary}; screenshots in {}", shots.display());
    let picked: Vec<String> = summary["paid"]
        .as_array()
        .expect("seats paid for")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert_eq!(picked.len(), 2, "{summary}");
    assert!(
        picked
            .iter()
            .all(|s| s.starts_with("S39-") || s.starts_with("S40-")),
        "seats from a section with seats left: {picked:?}"
    );
    assert_eq!(summary["second_browser_saw_sold"], true);
    assert!(
        summary["listed_few_left"]
            .as_str()
            .is_some_and(|t| t.starts_with("Few left: 998 seats")),
        "{summary}"
    );
    assert_eq!(summary["listed_sold_out"], "Sold out", "{summary}");
    let (_, map) = stack.seat_map(&api, &event).await;
    for seat in &picked {
        assert_eq!(map["seats"][seat], "sold", "{seat}");
    }
    let taken = map["seats"].as_object().unwrap().len();
    assert_eq!(taken, sections * rows * seats, "every seat sold or held");
}
