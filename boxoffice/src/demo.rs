//! `boxoffice demo`: signs in as an organizer and creates an on-sale demo
//! event through the API, like an organizer would.

use anyhow::Context;
use boxoffice_domain::EventSpec;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Base URL of the API.
    #[arg(
        long,
        env = "BOXOFFICE_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    /// Base URL of the web app, for the links printed.
    #[arg(long, default_value = "http://127.0.0.1:8380")]
    pub web: String,
    #[arg(
        long,
        env = "BOXOFFICE_ORGANIZER_PASSWORD",
        default_value = "organizer",
        hide_env_values = true
    )]
    pub organizer_password: String,
    #[arg(long, default_value = "boxoffice demo night")]
    pub name: String,
    /// Sections (A, B, ...), rows per section and seats per row.
    #[arg(long, default_value_t = 3)]
    pub sections: u8,
    #[arg(long, default_value_t = 10)]
    pub rows: u16,
    #[arg(long, default_value_t = 20)]
    pub seats_per_row: u16,
    /// How long a hold lasts (seconds).
    #[arg(long, default_value_t = 600)]
    pub hold_seconds: i64,
}

/// Signs in as organizer; returns the token.
pub async fn organizer_token(
    http: &reqwest::Client,
    api: &str,
    password: &str,
) -> anyhow::Result<String> {
    let res: Value = http
        .post(format!("{api}/api/auth/organizer"))
        .json(&json!({ "password": password }))
        .send()
        .await
        .with_context(|| format!("is the API running at {api}?"))?
        .error_for_status()
        .context("organizer sign-in refused")?
        .json()
        .await?;
    Ok(res["token"]
        .as_str()
        .context("no token in sign-in answer")?
        .to_owned())
}

/// Creates an event through the API and returns its JSON.
pub async fn create_event(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    spec: &EventSpec,
    hold_seconds: i64,
) -> anyhow::Result<Value> {
    let ms = |m: i64| chrono::DateTime::from_timestamp_millis(m).unwrap_or_default();
    let body = json!({
        "name": spec.name,
        "starts_at": ms(spec.starts_at_ms),
        "sale_opens_at": ms(spec.sale_opens_at_ms),
        "sale_closes_at": ms(spec.sale_closes_at_ms),
        "venue": spec.venue,
        "price_categories": spec.price_categories,
        "max_seats_per_buyer": spec.max_seats_per_buyer,
        "hold_duration_seconds": hold_seconds,
        "parts": spec.parts,
        "waiting_room": spec.waiting_room,
    });
    let res = http
        .post(format!("{api}/api/events"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let json: Value = res.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "creating the event failed: {status} {json}"
    );
    Ok(json)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let api = args.api.trim_end_matches('/');
    let token = organizer_token(&http, api, &args.organizer_password).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let spec = EventSpec::demo(
        &args.name,
        args.sections,
        args.rows,
        args.seats_per_row,
        now - 60_000,
    );
    spec.validate()?;
    let event = create_event(&http, api, &token, &spec, args.hold_seconds).await?;
    let id = event["id"].as_str().unwrap_or_default();
    println!(
        "demo event created: {} ({} seats, on sale now)",
        args.name,
        spec.venue.capacity()
    );
    let web = args.web.trim_end_matches('/');
    println!("  buy:      {web}/events/{id}");
    println!("  watch:    {web}/organizer/events/{id}  (organizers)");
    println!("  event:    {api}/api/events/{id}");
    println!("  seat map: {api}/api/events/{id}/seats");
    println!("  live:     {api}/api/events/{id}/seats/stream");
    println!("EVENT_ID={id}");
    Ok(())
}
