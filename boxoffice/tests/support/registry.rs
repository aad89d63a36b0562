//! A stand-in for the Confluent Schema Registry, for the tests only: the
//! part of its REST contract the roles use (subjects, versions, schemas by
//! id, per-subject compatibility), kept in memory. It does not check
//! compatibility between versions (the project's own test of the released
//! schemas does: platform/src/messages/tests.rs). It is held to the
//! documented exchanges in tests/fixtures/schema-registry.json by
//! `the_stand_in_answers_as_the_documented_registry`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const LEVELS: [&str; 7] = [
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
];

#[derive(Default)]
pub struct Registry {
    /// Schemas by id - 1, in the registry's canonical form.
    pub schemas: Vec<String>,
    /// Subject -> ids of its versions, oldest first.
    pub subjects: HashMap<String, Vec<u32>>,
    pub compatibility: HashMap<String, String>,
}

type Shared = web::Data<Arc<Mutex<Registry>>>;

fn answer(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type(CONTENT_TYPE)
        .body(body.to_string())
}

fn error(status: u16, code: u32, message: String) -> HttpResponse {
    answer(status, json!({ "error_code": code, "message": message }))
}

/// The registry keeps a schema in a canonical form: a primitive type as
/// its bare name (`{"type": "string"}` is `"string"`), anything else as
/// compact JSON.
fn canonical(schema: &Value) -> String {
    match schema {
        Value::Object(o) if o.len() == 1 && o.get("type").is_some_and(Value::is_string) => {
            o["type"].to_string()
        }
        other => other.to_string(),
    }
}

async fn set_config(
    reg: Shared,
    subject: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    let level = body["compatibility"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !LEVELS.contains(&level.as_str()) {
        return error(422, 42203, "Invalid compatibility level".into());
    }
    reg.lock()
        .unwrap()
        .compatibility
        .insert(subject.into_inner(), level.clone());
    answer(200, json!({ "compatibility": level }))
}

async fn register(reg: Shared, subject: web::Path<String>, body: web::Json<Value>) -> HttpResponse {
    let parsed = body["schema"]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    let Some(parsed) = parsed else {
        return error(422, 42201, "Invalid schema".into());
    };
    let text = canonical(&parsed);
    let mut reg = reg.lock().unwrap();
    let id = match reg.schemas.iter().position(|s| *s == text) {
        Some(i) => i as u32 + 1,
        None => {
            reg.schemas.push(text);
            reg.schemas.len() as u32
        }
    };
    let versions = reg.subjects.entry(subject.into_inner()).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    answer(200, json!({ "id": id }))
}

async fn versions(reg: Shared, subject: web::Path<String>) -> HttpResponse {
    let reg = reg.lock().unwrap();
    match reg.subjects.get(subject.as_str()) {
        Some(ids) => answer(200, json!((1..=ids.len()).collect::<Vec<_>>())),
        None => error(404, 40401, format!("Subject '{subject}' not found.")),
    }
}

async fn version(reg: Shared, path: web::Path<(String, usize)>) -> HttpResponse {
    let (subject, version) = path.into_inner();
    let reg = reg.lock().unwrap();
    let Some(ids) = reg.subjects.get(&subject) else {
        return error(404, 40401, format!("Subject '{subject}' not found."));
    };
    match version.checked_sub(1).and_then(|i| ids.get(i)) {
        Some(&id) => answer(
            200,
            json!({ "subject": subject, "version": version, "id": id, "schema": reg.schemas[id as usize - 1] }),
        ),
        None => error(404, 40402, format!("Version {version} not found.")),
    }
}

async fn schema(reg: Shared, id: web::Path<usize>) -> HttpResponse {
    let reg = reg.lock().unwrap();
    match id.checked_sub(1).and_then(|i| reg.schemas.get(i)) {
        Some(s) => answer(200, json!({ "schema": s })),
        None => error(404, 40403, format!("Schema {id} not found")),
    }
}

pub struct StandIn {
    pub port: u16,
    pub state: Arc<Mutex<Registry>>,
    handle: actix_web::dev::ServerHandle,
}

impl StandIn {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Registry::default()));
        let data = web::Data::new(state.clone());
        // The roles send the registry's content type; accept it as JSON.
        let json = web::JsonConfig::default().content_type(|_| true);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(json.clone())
                .route("/config/{subject}", web::put().to(set_config))
                .route("/subjects/{subject}/versions", web::post().to(register))
                .route("/subjects/{subject}/versions", web::get().to(versions))
                .route(
                    "/subjects/{subject}/versions/{version}",
                    web::get().to(version),
                )
                .route("/schemas/ids/{id}", web::get().to(schema))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the stand-in registry");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            state,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
