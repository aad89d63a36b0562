//! The API client behind the server functions. Visitors' tokens live in
//! HttpOnly cookies set here, so scripts in the page never see them: the
//! buyer token (`bx_buyer`, created on the first booking) and the organizer
//! token (`bx_organizer`, from signing in).

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::header::{HeaderValue, SET_COOKIE};
use anyhow::{Context, anyhow, bail};
use boxoffice_domain::RejectReason;
use boxoffice_platform::client::{self, TrustedProxies};
use chrono::{DateTime, NaiveDateTime, Utc};
use leptos::prelude::use_context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::model::{
    BookingInfo, BuyerAnswer, EventCard, EventPageData, NewEvent, RoomStanding, RowView, SaleStats,
    SeatRequest, SectionView, duration_words, money, parse_money,
};

const BUYER_COOKIE: &str = "bx_buyer";
const ORGANIZER_COOKIE: &str = "bx_organizer";

static API: OnceLock<Api> = OnceLock::new();

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// For long-lived streams: no overall timeout.
    pub stream: reqwest::Client,
}

/// Sets the API base URL once, at start.
pub fn configure(base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let stream = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let _ = API.set(Api {
        base: base.trim_end_matches('/').to_owned(),
        http,
        stream,
    });
    Ok(())
}

pub fn api() -> anyhow::Result<&'static Api> {
    API.get()
        .context("the dashboard's API client is not configured")
}

/// `X-Forwarded-For` for a call made for the visitor of `req`: one
/// address, the visitor's as this server resolves it (its peer, or behind
/// the proxies this server trusts, what they saw). Never the visitor's own
/// header: the API trusts this server (`BOXOFFICE_TRUSTED_PROXIES`) and
/// counts its rate limits per address, so whatever the visitor wrote there
/// must not reach it (docs/front-door.md).
pub fn visitor_address(req: &actix_web::HttpRequest) -> Option<String> {
    let none = TrustedProxies::default();
    let forwarded = client::forwarded_for(req.headers());
    client::address(
        req.peer_addr().map(|a| a.ip()),
        forwarded.as_deref(),
        TRUSTED_PROXIES.get().unwrap_or(&none),
    )
    .map(|a| a.to_string())
}

static TRUSTED_PROXIES: OnceLock<TrustedProxies> = OnceLock::new();

/// The proxies in front of this server whose `X-Forwarded-For` it believes.
pub fn trust_proxies(proxies: TrustedProxies) {
    let _ = TRUSTED_PROXIES.set(proxies);
}

/// One API call: the status and the JSON body (`null` when there is none).
async fn call(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> anyhow::Result<(StatusCode, Value)> {
    let key = idempotency_key.map(|k| ("Idempotency-Key", k));
    call_with(method, path, token, body, key.as_slice()).await
}

/// [`call`] with these request headers.
async fn call_with(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(StatusCode, Value)> {
    let api = api()?;
    let mut req = api.http.request(method, format!("{}{path}", api.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    // The visitor's request is not Send: read it before the call is sent.
    let visitor = leptos_actix::extract::<actix_web::HttpRequest>()
        .await
        .ok()
        .as_ref()
        .and_then(visitor_address);
    if let Some(address) = visitor {
        req = req.header("X-Forwarded-For", address);
    }
    let res = req.send().await.map_err(|e| {
        tracing::warn!(path, error = %e, "the API is unreachable");
        anyhow!("The booking service is unreachable, try again in a moment.")
    })?;
    let status = res.status();
    if status.is_server_error() {
        tracing::warn!(path, %status, "the API failed");
    }
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// The body of a successful call, or the API's own message as the error.
async fn get_ok(path: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let (status, body) = call(Method::GET, path, token, None, None).await?;
    if !status.is_success() {
        bail!(
            "{}",
            message(&body, "The booking service refused the request.")
        );
    }
    Ok(body)
}

/// The human sentence for an API error body.
fn message(body: &Value, fallback: &str) -> String {
    let code = body["code"].as_str().unwrap_or_default();
    match code {
        "seats_taken" => "Sorry, some of these seats were taken meanwhile. Pick others.".to_owned(),
        "buyer_limit_exceeded" => {
            "That would be more seats than one buyer may have for this event.".to_owned()
        }
        _ => body["message"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| RejectReason::from_code(code).map(|r| r.message().to_owned()))
            .unwrap_or_else(|| fallback.to_owned()),
    }
}

/// A token cookie: script cannot read it, other sites' requests do not
/// carry it, and over HTTPS (as the connection or the proxy in front says,
/// `X-Forwarded-Proto`) it never travels over plain HTTP.
fn cookie_value(name: &str, value: &str, max_age_s: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .ok()
}

fn set_cookie(name: &str, value: &str, max_age_s: u64) {
    let secure = use_context::<leptos_actix::Request>()
        .is_some_and(|req| req.connection_info().scheme() == "https");
    if let (Some(res), Some(v)) = (
        use_context::<leptos_actix::ResponseOptions>(),
        cookie_value(name, value, max_age_s, secure),
    ) {
        res.append_header(SET_COOKIE, v);
    }
}

async fn cookie(name: &str) -> Option<String> {
    let req: actix_web::HttpRequest = leptos_actix::extract().await.ok()?;
    req.cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The visitor's buyer token; a new buyer identity on the first booking.
async fn buyer_token() -> anyhow::Result<String> {
    if let Some(t) = cookie(BUYER_COOKIE).await {
        return Ok(t);
    }
    let (status, body) = call(Method::POST, "/api/auth/buyer", None, None, None).await?;
    if body["code"] == "guests_disabled" {
        bail!("Sign in to book: open Account at the top of the page.");
    }
    let token = body["token"]
        .as_str()
        .filter(|_| status.is_success())
        .context("The booking service gave no buyer identity; try again.")?
        .to_owned();
    set_cookie(BUYER_COOKIE, &token, lifetime_s(&body));
    Ok(token)
}

/// Whether the visitor's buyer cookie is an account's live sign-in.
pub async fn buyer_signed_in() -> bool {
    let Some(token) = cookie(BUYER_COOKIE).await else {
        return false;
    };
    get_ok("/api/auth/session", Some(&token))
        .await
        .is_ok_and(|s| s["signed_in"] == true && s["role"] == "buyer")
}

/// Signs a buyer in (or, `new`, opens their account): bookings from then
/// on are the account's, and its per-buyer limit holds across devices.
pub async fn buyer_sign_in(email: &str, password: &str, new: bool) -> anyhow::Result<()> {
    account_sign_in(email, password, new.then_some("buyer"))
        .await?
        .keep(
            BUYER_COOKIE,
            "buyer",
            "This is an organizer's account: sign in to the organizer pages with it.",
        )
        .await
}

/// Ends the buyer's session at the API and forgets the cookie; a guest's
/// cookie is only forgotten (its token expires by itself).
pub async fn buyer_sign_out() {
    end_session(BUYER_COOKIE).await;
}

/// A sign-in or sign-up the API answered.
struct SignedIn {
    status: StatusCode,
    body: Value,
}

/// Signs an account in, or opens one with `role` (`Some`) first.
async fn account_sign_in(
    email: &str,
    password: &str,
    new: Option<&str>,
) -> anyhow::Result<SignedIn> {
    let (path, body) = match new {
        Some(role) => (
            "/api/accounts",
            json!({ "email": email, "password": password, "role": role }),
        ),
        None => (
            "/api/sessions",
            json!({ "email": email, "password": password }),
        ),
    };
    let (status, body) = call(Method::POST, path, None, Some(body), None).await?;
    Ok(SignedIn { status, body })
}

impl SignedIn {
    /// Keeps the token in `cookie` if the API signed in an account of
    /// `role` (the house organizer's answer names none); an account of the
    /// other role has its new session ended at once, and `wrong_role` is
    /// the answer.
    async fn keep(self, cookie: &str, role: &str, wrong_role: &str) -> anyhow::Result<()> {
        if !self.status.is_success() {
            bail!("{}", message(&self.body, "Signing in failed."));
        }
        let token = self.body["token"].as_str().context("no token")?;
        if self.body["role"].as_str().is_some_and(|r| r != role) {
            revoke(token).await;
            bail!("{wrong_role}");
        }
        set_cookie(cookie, token, lifetime_s(&self.body));
        Ok(())
    }
}

/// Ends the session of `token` at the API (a guest's or house organizer's
/// token has none: the API says so, and it only expires).
async fn revoke(token: &str) {
    let _ = call(
        Method::DELETE,
        "/api/sessions/current",
        Some(token),
        None,
        None,
    )
    .await;
}

/// Ends the session in `cookie`, then forgets the cookie.
async fn end_session(name: &str) {
    if let Some(token) = cookie(name).await {
        revoke(&token).await;
    }
    set_cookie(name, "", 0);
}

/// The visitor's organizer token and whose it is (`GET /api/auth/session`),
/// checked with the API.
async fn organizer_session() -> anyhow::Result<(String, Value)> {
    let token = cookie(ORGANIZER_COOKIE)
        .await
        .context("Organizers only: sign in first.")?;
    let body = get_ok("/api/auth/session", Some(&token))
        .await
        .map_err(|_| anyhow!("Organizers only: your sign-in expired, sign in again."))?;
    if body["role"] != "organizer" {
        bail!("Organizers only: sign in first.");
    }
    Ok((token, body))
}

/// Answers the current server function with 403.
fn forbid() {
    if let Some(res) = use_context::<leptos_actix::ResponseOptions>() {
        res.set_status(actix_web::http::StatusCode::FORBIDDEN);
    }
}

/// The organizer token for a protected server function that does not call
/// the API; anyone else gets 403 and the reason.
pub(crate) async fn require_organizer() -> anyhow::Result<String> {
    Ok(require_organizer_session().await?.0)
}

/// [`require_organizer`], with whose the token is.
async fn require_organizer_session() -> anyhow::Result<(String, Value)> {
    let session = organizer_session().await;
    if session.is_err() {
        forbid();
    }
    session
}

/// An organizer-only API call with the visitor's organizer token. The API
/// checks the token on the call itself; whoever it refuses gets 403 here
/// too; any other refusal becomes its sentence (or `fallback`).
async fn organizer_call(
    method: Method,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
    fallback: &str,
) -> anyhow::Result<Value> {
    let Some(token) = cookie(ORGANIZER_COOKIE).await else {
        forbid();
        bail!("Organizers only: sign in first.");
    };
    let (status, body) = call(method, path, Some(&token), body, idempotency_key).await?;
    match status.as_u16() {
        200..=299 => Ok(body),
        403 if body["code"] == "not_your_event" => {
            forbid();
            bail!("{}", crate::model::NOT_YOUR_EVENT)
        }
        401 | 403 => {
            forbid();
            bail!("Organizers only: your sign-in expired, sign in again.")
        }
        _ => bail!("{}", message(&body, fallback)),
    }
}

pub async fn is_organizer() -> bool {
    organizer_session().await.is_ok()
}

/// Signs an organizer in: an account (email and password), or the house
/// organizer (no email, the shared password).
pub async fn sign_in(email: &str, password: &str) -> anyhow::Result<()> {
    let answer = if email.trim().is_empty() {
        let body = json!({ "password": password });
        let (status, body) =
            call(Method::POST, "/api/auth/organizer", None, Some(body), None).await?;
        SignedIn { status, body }
    } else {
        account_sign_in(email, password, None).await?
    };
    answer.keep_organizer().await
}

/// Opens an organizer account.
pub async fn sign_up(email: &str, password: &str) -> anyhow::Result<()> {
    account_sign_in(email, password, Some("organizer"))
        .await?
        .keep_organizer()
        .await
}

impl SignedIn {
    async fn keep_organizer(self) -> anyhow::Result<()> {
        let wrong = "This is a buyer's account: organizer pages need an organizer account.";
        self.keep(ORGANIZER_COOKIE, "organizer", wrong).await
    }
}

/// Ends the organizer's session at the API (a house-organizer token has
/// none and only expires), then forgets the cookie.
pub async fn sign_out() {
    end_session(ORGANIZER_COOKIE).await;
}

/// How long a token the API just gave lasts, from its `expires_at`: the
/// cookie goes when the token stops counting, and the next visit gets a
/// new one instead of a refusal.
fn lifetime_s(body: &Value) -> u64 {
    body["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(3600, |t| {
            u64::try_from((t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds())
                .unwrap_or(0)
        })
}

fn short_time(iso: &str) -> String {
    iso.chars().take(16).collect::<String>().replace('T', " ")
}

pub async fn list_events() -> anyhow::Result<Vec<EventCard>> {
    let body = get_ok("/api/events", None).await?;
    Ok(event_cards(&body, |_| true))
}

/// The events the signed-in organizer runs.
pub async fn my_events() -> anyhow::Result<Vec<EventCard>> {
    let (_, me) = require_organizer_session().await?;
    let body = get_ok("/api/events", None).await?;
    Ok(event_cards(&body, |e| e["organizer_id"] == me["id"]))
}

fn event_cards(body: &Value, keep: impl Fn(&Value) -> bool) -> Vec<EventCard> {
    body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| keep(e))
        .map(|e| EventCard {
            id: e["id"].as_str().unwrap_or_default().to_owned(),
            name: e["name"].as_str().unwrap_or_default().to_owned(),
            venue: e["venue"].as_str().unwrap_or_default().to_owned(),
            starts_at: short_time(e["starts_at"].as_str().unwrap_or_default()),
            on_sale: e["on_sale"].as_bool().unwrap_or(false),
            capacity: e["capacity"].as_u64().unwrap_or(0),
            sale_state: e["sale_state"].as_str().unwrap_or_default().to_owned(),
            sale_opens: short_time(e["sale_opens_at"].as_str().unwrap_or_default()),
            seats_left: e["seats_left"].as_u64().unwrap_or(0),
        })
        .collect()
}

/// The sections of `spec`, drawn from the venue layout.
fn layout_of(spec: &Value) -> Vec<SectionView> {
    let categories: Vec<&Value> = spec["price_categories"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    spec["venue"]["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let wanted = s["price_category"].as_str().unwrap_or_default();
            let category_index = categories
                .iter()
                .position(|c| c["code"] == wanted)
                .unwrap_or(0);
            let c = categories
                .get(category_index)
                .copied()
                .unwrap_or(&Value::Null);
            let rows: Vec<RowView> = s["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| RowView {
                    label: r["label"].as_str().unwrap_or_default().to_owned(),
                    seats: u32::try_from(r["seats"].as_u64().unwrap_or(0)).unwrap_or(0),
                })
                .collect();
            SectionView {
                code: s["code"].as_str().unwrap_or_default().to_owned(),
                name: s["name"].as_str().unwrap_or_default().to_owned(),
                category: c["name"].as_str().unwrap_or_default().to_owned(),
                category_index,
                price: money(
                    c["price_cents"].as_i64().unwrap_or(0),
                    c["currency"].as_str().unwrap_or_default(),
                ),
                capacity: rows.iter().map(|r| u64::from(r.seats)).sum(),
                rows,
            }
        })
        .collect()
}

pub async fn event_page(id: &str) -> anyhow::Result<EventPageData> {
    let (event_path, seats_path) = (
        format!("/api/events/{id}"),
        format!("/api/events/{id}/seats?encoding=compact"),
    );
    let (event, seats) = futures::join!(get_ok(&event_path, None), get_ok(&seats_path, None));
    let (event, seats) = (event?, seats?);
    let spec = &event["spec"];
    let sections = layout_of(spec);
    let states = compact_states(&seats);
    let categories = spec["price_categories"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                money(
                    c["price_cents"].as_i64().unwrap_or(0),
                    c["currency"].as_str().unwrap_or_default(),
                ),
            )
        })
        .collect();
    Ok(EventPageData {
        id: id.to_owned(),
        name: event["name"].as_str().unwrap_or_default().to_owned(),
        venue: spec["venue"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        starts_at: short_time(event["starts_at"].as_str().unwrap_or_default()),
        on_sale: event["on_sale"].as_bool().unwrap_or(false),
        max_seats: event["max_seats_per_buyer"].as_u64().unwrap_or(0),
        hold: duration_words(spec["hold_duration_ms"].as_i64().unwrap_or(0)),
        currency: spec["price_categories"][0]["currency"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        sections,
        categories,
        states,
        waiting_room_per_minute: spec["waiting_room"]["admissions_per_minute"].as_u64(),
    })
}

/// Each section's seat states as the API's compact seat map carries them
/// (one character per seat in layout order, as the page keeps them:
/// [`crate::model::decode_states`]), in the venue's section order.
fn compact_states(seats: &Value) -> Vec<String> {
    seats["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["states"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The seat states now, encoded as the page keeps them: a few bytes per
/// seat even when a stadium is sold.
pub async fn seat_states(id: &str) -> anyhow::Result<Vec<String>> {
    let seats = get_ok(&format!("/api/events/{id}/seats?encoding=compact"), None).await?;
    Ok(compact_states(&seats))
}

/// A booking view from the API as the page shows it, with the sentence for it.
fn booking_answer(view: &Value) -> BuyerAnswer {
    let seats: Vec<String> = view["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    let status = view["status"].as_str().unwrap_or("pending").to_owned();
    let expires = view["hold_expires_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    let list = seats.join(", ");
    let (ok, message) = match status.as_str() {
        "held" => (
            true,
            format!("Held {list}: pay before the hold ends to buy them."),
        ),
        "confirmed" => (true, format!("Paid: {list} are yours. Enjoy the show!")),
        "cancelled" => (true, format!("Cancelled: {list} went back on sale.")),
        "expired" => (
            false,
            format!("The hold on {list} ended; the seats went back on sale."),
        ),
        "rejected" => (
            false,
            message(
                &json!({ "code": view["reject_reason"] }),
                "The booking was refused.",
            ),
        ),
        _ => (
            true,
            "You are in the queue: your answer appears here in a moment.".to_owned(),
        ),
    };
    BuyerAnswer {
        ok,
        message,
        booking: Some(BookingInfo {
            id: view["id"].as_str().unwrap_or_default().to_owned(),
            total_cents: view["total_cents"].as_i64().unwrap_or(0),
            status,
            seats,
            hold_expires_at_ms: expires,
        }),
    }
}

fn refused(body: &Value, fallback: &str) -> BuyerAnswer {
    BuyerAnswer {
        ok: false,
        message: message(body, fallback),
        booking: None,
    }
}

pub async fn request_seats(
    event: &str,
    request: SeatRequest,
    key: &str,
) -> anyhow::Result<BuyerAnswer> {
    let token = buyer_token().await?;
    let body = match request {
        SeatRequest::Seats(seats) => json!({ "seats": seats }),
        SeatRequest::BestAvailable { section, quantity } => {
            json!({ "section": section, "quantity": quantity })
        }
    };
    let place = cookie(&place_cookie(event)).await;
    let mut headers = vec![("Idempotency-Key", key)];
    if let Some(p) = place.as_deref() {
        headers.push(("Waiting-Room-Token", p));
    }
    let (status, body) = call_with(
        Method::POST,
        &format!("/api/events/{event}/bookings"),
        Some(&token),
        Some(body),
        &headers,
    )
    .await?;
    Ok(match status.as_u16() {
        200..=202 => booking_answer(&body),
        _ => refused(&body, "The booking was refused."),
    })
}

/// The cookie that keeps the visitor's place in an event's waiting room.
fn place_cookie(event: &str) -> String {
    let id: String = event.chars().filter(char::is_ascii_hexdigit).collect();
    format!("boxoffice_place_{id}")
}

/// Joins the event's waiting room (`join`) or asks where the visitor
/// stands; the place's newest token is kept in its cookie.
pub async fn waiting_room(event: &str, join: bool) -> anyhow::Result<RoomStanding> {
    let token = buyer_token().await?;
    let name = place_cookie(event);
    let place = cookie(&name).await;
    let path = format!("/api/events/{event}/waiting-room");
    let (status, body) = match (join, place.as_deref()) {
        (false, Some(p)) => {
            call_with(
                Method::GET,
                &path,
                Some(&token),
                None,
                &[("Waiting-Room-Token", p)],
            )
            .await?
        }
        (false, None) => call(Method::GET, &path, Some(&token), None, None).await?,
        (true, _) => call(Method::POST, &path, Some(&token), None, None).await?,
    };
    if body["code"] == "no_place" {
        // Not joined yet: the page offers to.
        return Ok(RoomStanding {
            state: "none".to_owned(),
            ahead: None,
            waiting: 0,
            wait_s: None,
            window_ends_ms: None,
            sale_opens: String::new(),
        });
    }
    if !status.is_success() {
        bail!(
            "{}",
            message(&body, "The waiting room could not be reached.")
        );
    }
    if let Some(t) = body["token"].as_str() {
        set_cookie(&name, t, 2 * 86_400);
    }
    let ms = |k: &str| {
        body[k]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .map(|t| t.timestamp_millis())
    };
    Ok(RoomStanding {
        state: body["state"].as_str().unwrap_or("waiting").to_owned(),
        ahead: body["ahead"].as_u64(),
        waiting: body["waiting"].as_u64().unwrap_or(0),
        wait_s: body["estimated_wait_seconds"].as_u64(),
        window_ends_ms: ms("window_ends_at"),
        sale_opens: short_time(body["sale_opens_at"].as_str().unwrap_or_default()),
    })
}

pub async fn await_booking(id: &str) -> anyhow::Result<BuyerAnswer> {
    let token = buyer_token().await?;
    let (status, body) = call(
        Method::GET,
        &format!("/api/bookings/{id}?wait_ms=5000"),
        Some(&token),
        None,
        None,
    )
    .await?;
    Ok(match status.as_u16() {
        200 => booking_answer(&body),
        // Not decided yet: still in the queue.
        202 | 404 => booking_answer(&json!({ "id": id, "status": "pending" })),
        _ => refused(&body, "This booking could not be read."),
    })
}

async fn booking_action(
    id: &str,
    method: Method,
    path: String,
    body: Option<Value>,
) -> anyhow::Result<BuyerAnswer> {
    let token = buyer_token().await?;
    let key = format!("web-{}-{id}", path.rsplit('/').next().unwrap_or("action"));
    let (status, body) = call(method, &path, Some(&token), body, Some(&key)).await?;
    Ok(match status.as_u16() {
        200 | 201 => booking_answer(&body),
        202 => booking_answer(&json!({ "id": id, "status": "pending" })),
        _ => refused(&body, "That did not work."),
    })
}

pub async fn confirm_booking(id: &str) -> anyhow::Result<BuyerAnswer> {
    // The payment itself is out of scope: the reference stands for what a
    // payment provider would return.
    let reference = format!("web-{}", uuid::Uuid::new_v4().simple());
    booking_action(
        id,
        Method::POST,
        format!("/api/bookings/{id}/confirm"),
        Some(json!({ "payment_reference": reference })),
    )
    .await
}

pub async fn cancel_booking(id: &str) -> anyhow::Result<BuyerAnswer> {
    booking_action(id, Method::DELETE, format!("/api/bookings/{id}"), None).await
}

/// The API's event body for the organizer's form, with every field checked.
pub fn event_body(form: &NewEvent, now: DateTime<Utc>) -> anyhow::Result<Value> {
    let name = form.name.trim();
    anyhow::ensure!(!name.is_empty(), "Give the event a name.");
    anyhow::ensure!(!form.venue.trim().is_empty(), "Give the venue a name.");
    let minute = |text: &str| {
        NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M").map(|t| t.and_utc())
    };
    let starts_at =
        minute(&form.starts_at).map_err(|_| anyhow!("Pick the date and time the event starts."))?;
    anyhow::ensure!(starts_at > now, "The event must start in the future.");
    let sale_opens_at = if form.open_now {
        now
    } else {
        minute(&form.sale_opens_at)
            .map_err(|_| anyhow!("Pick when the sale opens, or open it now."))?
    };
    anyhow::ensure!(
        sale_opens_at < starts_at,
        "The sale must open before the event starts."
    );
    anyhow::ensure!(
        !form.categories.is_empty(),
        "Add at least one price category."
    );
    anyhow::ensure!(!form.sections.is_empty(), "Add at least one section.");
    let mut categories = Vec::new();
    for c in &form.categories {
        let cents = parse_money(&c.price)
            .ok_or_else(|| anyhow!("The price of category {:?} must look like 89.00.", c.code))?;
        categories.push(json!({
            "code": c.code.trim(),
            "name": c.name.trim(),
            "price_cents": cents,
            "currency": c.currency.trim().to_uppercase(),
        }));
    }
    let mut sections = Vec::new();
    for s in &form.sections {
        anyhow::ensure!(
            (1..=100).contains(&s.rows) && (1..=200).contains(&s.seats_per_row),
            "Section {:?} needs 1 to 100 rows of 1 to 200 seats.",
            s.code
        );
        anyhow::ensure!(
            form.categories
                .iter()
                .any(|c| c.code.trim() == s.category.trim()),
            "Section {:?} uses price category {:?}, which is not in the list.",
            s.code,
            s.category
        );
        let rows: Vec<Value> = (1..=s.rows)
            .map(|r| json!({ "label": r.to_string(), "seats": s.seats_per_row }))
            .collect();
        sections.push(json!({
            "code": s.code.trim(),
            "name": s.name.trim(),
            "price_category": s.category.trim(),
            "rows": rows,
        }));
    }
    Ok(json!({
        "name": name,
        "starts_at": starts_at,
        "sale_opens_at": sale_opens_at,
        "sale_closes_at": starts_at,
        "venue": { "name": form.venue.trim(), "sections": sections },
        "price_categories": categories,
        "max_seats_per_buyer": form.max_seats_per_buyer,
        "hold_duration_seconds": i64::from(form.hold_minutes) * 60,
        "parts": form.parts,
        // Buyers may queue half an hour ahead and shop for ten minutes.
        "waiting_room": form.waiting_room_per_minute.map(|rate| json!({
            "admissions_per_minute": rate,
            "opens_minutes_before": 30,
            "shopping_minutes": 10,
        })),
    }))
}

pub async fn create_event(form: NewEvent) -> anyhow::Result<String> {
    let body = event_body(&form, Utc::now())?;
    let key = format!("web-create-{}", uuid::Uuid::new_v4().simple());
    let created = organizer_call(
        Method::POST,
        "/api/events",
        Some(body),
        Some(&key),
        "The event could not be created.",
    )
    .await?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .context("the API answered without an event id")
}

pub async fn set_sale(id: &str, open: bool) -> anyhow::Result<bool> {
    let event = organizer_call(
        Method::POST,
        &format!("/api/events/{id}/sale"),
        Some(json!({ "open": open })),
        None,
        "The sale could not be switched.",
    )
    .await?;
    Ok(event["on_sale"].as_bool().unwrap_or(open))
}

pub async fn sale_stats(id: &str) -> anyhow::Result<SaleStats> {
    let s = organizer_call(
        Method::GET,
        &format!("/api/events/{id}/stats"),
        None,
        None,
        "The sale's figures could not be read.",
    )
    .await?;
    let pairs = |v: &Value| -> Vec<(String, u64)> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
            .collect()
    };
    let b = &s["bookings"];
    Ok(SaleStats {
        name: s["name"].as_str().unwrap_or_default().to_owned(),
        on_sale: s["on_sale"].as_bool().unwrap_or(false),
        capacity: s["capacity"].as_u64().unwrap_or(0),
        free: s["free"].as_u64().unwrap_or(0),
        held: s["held"].as_u64().unwrap_or(0),
        sold: s["sold"].as_u64().unwrap_or(0),
        revenue: money(
            b["revenue_cents"].as_i64().unwrap_or(0),
            s["currency"].as_str().unwrap_or_default(),
        ),
        decided: b["decided"].as_u64().unwrap_or(0),
        by_status: pairs(&b["by_status"]),
        rejections: pairs(&b["rejections"])
            .into_iter()
            .map(|(code, n)| {
                let text = RejectReason::from_code(&code).map_or(code, |r| r.message().to_owned());
                (text, n)
            })
            .collect(),
        waiting_room: s["waiting_room"].as_object().map(|w| {
            let n = |k: &str| w.get(k).and_then(Value::as_u64).unwrap_or(0);
            (n("waiting"), n("admitted"), n("admissions_per_minute"))
        }),
        at_ms: s["at_ms"].as_i64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CategoryForm, SectionForm};

    fn form() -> NewEvent {
        NewEvent {
            name: "Spring Gala".into(),
            venue: "Hall".into(),
            starts_at: "2030-05-01T20:00".into(),
            max_seats_per_buyer: 4,
            hold_minutes: 10,
            parts: 1,
            waiting_room_per_minute: None,
            open_now: true,
            sale_opens_at: String::new(),
            categories: vec![CategoryForm {
                code: "P".into(),
                name: "Premium".into(),
                price: "89.50".into(),
                currency: "eur".into(),
            }],
            sections: vec![SectionForm {
                code: "A".into(),
                name: "Stalls".into(),
                category: "P".into(),
                rows: 3,
                seats_per_row: 12,
            }],
        }
    }

    /// The API writes the compact seat states (from the cache), the page
    /// reads them: both agree on every seat of a layout.
    #[test]
    fn the_page_reads_the_seat_states_the_api_writes() {
        let spec = json!({
            "price_categories": [{"code": "STD", "name": "Standard", "price_cents": 100, "currency": "EUR"}],
            "venue": {"name": "v", "sections": [
                {"code": "A", "name": "A", "price_category": "STD", "rows": [{"label": "1", "seats": 3}, {"label": "AA", "seats": 2}]},
                {"code": "B", "name": "B", "price_category": "STD", "rows": [{"label": "1", "seats": 4}]},
            ]},
        });
        let venue: boxoffice_domain::VenueLayout =
            serde_json::from_value(spec["venue"].clone()).expect("venue");
        let taken = [
            ("A-1-3", "held:x"),
            ("A-AA-1", "sold:y"),
            ("B-1-4", "sold:z"),
        ];
        let compact = json!({"sections": venue.sections.iter().map(|s| {
            json!({"states": boxoffice_platform::cache::section_states(s, taken.iter().copied())})
        }).collect::<Vec<_>>()});
        let states = crate::model::decode_states(&layout_of(&spec), &compact_states(&compact));
        let mut want = crate::model::SeatStates::new();
        for (seat, value) in taken {
            want.insert(
                seat.to_owned(),
                value.split(':').next().unwrap_or_default().to_owned(),
            );
        }
        assert_eq!(states, want);
    }

    #[test]
    fn the_form_becomes_the_api_body() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let body = event_body(&form(), now).unwrap();
        assert_eq!(body["price_categories"][0]["price_cents"], 8950);
        assert_eq!(body["price_categories"][0]["currency"], "EUR");
        assert_eq!(
            body["venue"]["sections"][0]["rows"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            body["venue"]["sections"][0]["rows"][2],
            json!({ "label": "3", "seats": 12 })
        );
        assert_eq!(body["hold_duration_seconds"], 600);
        assert_eq!(body["sale_opens_at"], json!(now));

        let mut later = form();
        later.open_now = false;
        later.sale_opens_at = "2030-04-01T10:00".into();
        let body = event_body(&later, now).unwrap();
        assert_eq!(body["sale_opens_at"], "2030-04-01T10:00:00Z");
        assert_eq!(body["sale_closes_at"], "2030-05-01T20:00:00Z");
    }

    #[test]
    fn a_bad_form_gets_a_sentence_not_a_request() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        type Spoil = fn(&mut NewEvent);
        let cases: [(Spoil, &str); 7] = [
            (|f| f.name = " ".into(), "name"),
            (|f| f.starts_at = "2029-01-01T10:00".into(), "future"),
            (|f| f.categories[0].price = "12,50".into(), "price"),
            (|f| f.sections[0].category = "X".into(), "not in the list"),
            (|f| f.sections[0].rows = 0, "1 to 100 rows"),
            (|f| f.open_now = false, "when the sale opens"),
            (
                |f| {
                    f.open_now = false;
                    f.sale_opens_at = "2030-06-01T10:00".into();
                },
                "before the event starts",
            ),
        ];
        for (spoil, expected) in cases {
            let mut f = form();
            spoil(&mut f);
            let err = event_body(&f, now).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn rejections_read_as_sentences() {
        assert!(message(&json!({ "code": "seats_taken" }), "x").contains("taken meanwhile"));
        assert_eq!(
            message(&json!({ "code": "sale_not_open" }), "x"),
            "The sale for this event is not open."
        );
        assert_eq!(message(&Value::Null, "fallback"), "fallback");
    }
}
