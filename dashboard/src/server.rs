//! The server side: the API client behind the server functions, and the
//! actix server that renders pages and serves the wasm client.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use actix_files::Files;
use actix_web::{App as ActixApp, HttpServer, web};
use anyhow::Context;
use leptos::prelude::*;
use leptos_actix::{LeptosRoutes, generate_route_list};
use serde_json::{Value, json};

use crate::app::{App, EventCard, EventPageData, HoldResult, RowView, SeatView, SectionView, shell};

static API: OnceLock<Api> = OnceLock::new();

struct Api {
    base: String,
    http: reqwest::Client,
}

fn api() -> anyhow::Result<&'static Api> {
    API.get().context("the dashboard's API client is not configured")
}

async fn get_json(path: &str) -> anyhow::Result<Value> {
    let api = api()?;
    let res = api
        .http
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .context("the booking API is unreachable")?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "{}",
        body["message"].as_str().unwrap_or("the booking API refused the request")
    );
    Ok(body)
}

pub async fn list_events() -> anyhow::Result<Vec<EventCard>> {
    let body = get_json("/api/events").await?;
    Ok(body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| EventCard {
            id: e["id"].as_str().unwrap_or_default().to_owned(),
            name: e["name"].as_str().unwrap_or_default().to_owned(),
            venue: e["venue"].as_str().unwrap_or_default().to_owned(),
            starts_at: e["starts_at"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(16)
                .collect::<String>()
                .replace('T', " "),
            on_sale: e["on_sale"].as_bool().unwrap_or(false),
            capacity: e["capacity"].as_u64().unwrap_or(0),
        })
        .collect())
}

fn price(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, cents % 100)
}

pub async fn event_page(id: &str) -> anyhow::Result<EventPageData> {
    let (event_path, seats_path) = (format!("/api/events/{id}"), format!("/api/events/{id}/seats"));
    let (event, seats) = futures::join!(get_json(&event_path), get_json(&seats_path));
    let (event, seats) = (event?, seats?);
    let spec = &event["spec"];
    let currency = |category: &str| {
        spec["price_categories"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["code"] == category)
            .and_then(|c| c["currency"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let availability = seats["sections"].as_array().cloned().unwrap_or_default();
    let taken = seats["seats"].as_object().cloned().unwrap_or_default();
    let sections = spec["venue"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let code = s["code"].as_str().unwrap_or_default().to_owned();
            let a = availability.iter().find(|a| a["code"] == code.as_str());
            let category = s["price_category"].as_str().unwrap_or_default();
            let rows = s["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let label = r["label"].as_str().unwrap_or_default().to_owned();
                    let count = r["seats"].as_u64().unwrap_or(0) as u32;
                    RowView {
                        seats: (1..=count)
                            .map(|n| {
                                let id = format!("{code}-{label}-{n}");
                                let status = taken
                                    .get(&id)
                                    .and_then(Value::as_str)
                                    .unwrap_or("free")
                                    .to_owned();
                                SeatView { id, number: n, status }
                            })
                            .collect(),
                        label,
                    }
                })
                .collect();
            SectionView {
                name: s["name"].as_str().unwrap_or_default().to_owned(),
                price: price(
                    a.and_then(|a| a["price_cents"].as_i64()).unwrap_or(0),
                    &currency(category),
                ),
                free: a.and_then(|a| a["free"].as_u64()).unwrap_or(0),
                code,
                rows,
            }
        })
        .collect();
    Ok(EventPageData {
        id: id.to_owned(),
        name: event["name"].as_str().unwrap_or_default().to_owned(),
        venue: spec["venue"]["name"].as_str().unwrap_or_default().to_owned(),
        on_sale: event["on_sale"].as_bool().unwrap_or(false),
        max_seats: event["max_seats_per_buyer"].as_u64().unwrap_or(0),
        sections,
    })
}

pub async fn hold_seats(
    event: &str,
    seats: &[String],
    token: &str,
    key: &str,
) -> anyhow::Result<HoldResult> {
    let api = api()?;
    let token = if token.is_empty() {
        let res: Value = api
            .http
            .post(format!("{}/api/auth/buyer", api.base))
            .send()
            .await
            .context("the booking API is unreachable")?
            .json()
            .await?;
        res["token"]
            .as_str()
            .context("no buyer token from the API")?
            .to_owned()
    } else {
        token.to_owned()
    };
    let res = api
        .http
        .post(format!("{}/api/events/{event}/bookings", api.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", key)
        .json(&json!({ "seats": seats }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("the booking API is unreachable")?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let (ok, message) = match status {
        200 | 201 => {
            let seats: Vec<&str> = body["seats"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let until = body["hold_expires_at"]
                .as_str()
                .and_then(|t| t.get(11..16))
                .unwrap_or("");
            (
                true,
                format!("Held {} until {until} UTC: confirm to buy.", seats.join(", ")),
            )
        }
        202 => (
            true,
            "Your request is in the queue; the seat map will show the result.".to_owned(),
        ),
        _ => (
            false,
            body["message"]
                .as_str()
                .unwrap_or("The booking was refused.")
                .to_owned(),
        ),
    };
    Ok(HoldResult { ok, message, token })
}

async fn live() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(json!({ "live": true }))
}

/// Ready when the API it renders from is ready.
async fn ready() -> actix_web::HttpResponse {
    match get_json("/health/ready").await {
        Ok(_) => actix_web::HttpResponse::Ok().json(json!({ "ready": true, "checks": { "api": "ok" } })),
        Err(e) => actix_web::HttpResponse::ServiceUnavailable()
            .json(json!({ "ready": false, "checks": { "api": e.to_string() } })),
    }
}

/// Serves the app on `port` until the server stops; pages talk to `api_url`.
pub async fn run(port: u16, api_url: String, site_root: PathBuf) -> anyhow::Result<()> {
    let pkg = site_root.join("pkg");
    anyhow::ensure!(
        pkg.join("dashboard.js").exists(),
        "no wasm client in {}: build it with scripts/build-web.sh",
        pkg.display()
    );
    let _ = API.set(Api {
        base: api_url.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    });
    let options = LeptosOptions::builder()
        .output_name("dashboard")
        .site_root(site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(std::net::SocketAddr::from(([0, 0, 0, 0], port)))
        .build();
    let routes = generate_route_list(App);
    tracing::info!(port, api = %api_url, site = %site_root.display(), "dashboard started");
    HttpServer::new(move || {
        let opts = options.clone();
        ActixApp::new()
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/rpc/{tail:.*}", leptos_actix::handle_server_fns())
            .service(Files::new("/pkg", pkg.clone()))
            .leptos_routes(routes.clone(), {
                let opts = opts.clone();
                move || shell(opts.clone())
            })
            .app_data(web::Data::new(opts))
    })
    .bind(("0.0.0.0", port))
    .with_context(|| format!("cannot listen on port {port}"))?
    .run()
    .await?;
    Ok(())
}
