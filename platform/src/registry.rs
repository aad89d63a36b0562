//! The Confluent Schema Registry, when `BOXOFFICE_SCHEMA_REGISTRY_URL` is
//! set: at start, each role sets its topics' subjects (`<topic>-value`, the
//! serializers' TopicNameStrategy) to BACKWARD compatibility, registers the
//! schemas it writes, and learns every version registered before, so that it
//! reads what older writers wrote. From then on messages are framed as the
//! registry's serializers frame them: a zero byte, the schema id as 4
//! big-endian bytes, the Avro binary datum ([`crate::messages`]). Without a
//! registry (the local stack) they keep Avro's self-describing single-object
//! encoding; both are always read.
//!
//! The REST contract used here (Confluent Platform API reference):
//! - `PUT /config/{subject}` `{"compatibility": "BACKWARD"}` -> `{"compatibility": "BACKWARD"}`
//! - `POST /subjects/{subject}/versions` `{"schema": "..."}` -> `{"id": 1}`;
//!   409 when the schema is incompatible with the registered ones
//! - `GET /subjects/{subject}/versions` -> `[1, 2]`; 404 (40401) for a new subject
//! - `GET /subjects/{subject}/versions/{version}` -> `{"subject", "version", "id", "schema"}`

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;

use crate::config::CommonConfig;
use crate::messages;

/// The registry's content type, for requests and responses.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The subject of a topic's values (TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// A schema as registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Registered {
    pub id: u32,
    pub schema: String,
}

#[derive(Deserialize)]
struct Id {
    id: u32,
}

#[derive(Deserialize)]
struct RegistryError {
    error_code: i64,
    message: String,
}

/// A client of one registry.
#[derive(Clone)]
pub struct Registry {
    base: String,
    http: reqwest::Client,
}

impl Registry {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with the registry's content type accepted; any status.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        Ok(request
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await?)
    }

    /// Sends; a status other than success is the registry's error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        check(self.exchange(request).await?).await
    }

    fn json_body(
        request: reqwest::RequestBuilder,
        body: serde_json::Value,
    ) -> reqwest::RequestBuilder {
        request
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body.to_string())
    }

    /// Sets a subject's compatibility level.
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("/config/{subject}"));
        self.send(Self::json_body(
            self.http.put(url),
            json!({ "compatibility": level }),
        ))
        .await?;
        Ok(())
    }

    /// Registers `schema` under `subject` (or finds it registered) and
    /// returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> anyhow::Result<u32> {
        let url = self.url(&format!("/subjects/{subject}/versions"));
        let response = self
            .send(Self::json_body(
                self.http.post(url),
                json!({ "schema": schema }),
            ))
            .await?;
        Ok(response.json::<Id>().await?.id)
    }

    /// Every schema registered under `subject`, oldest first; none for a
    /// subject the registry does not know.
    pub async fn versions(&self, subject: &str) -> anyhow::Result<Vec<Registered>> {
        let url = self.url(&format!("/subjects/{subject}/versions"));
        let response = self.exchange(self.http.get(url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(vec![]);
        }
        let versions: Vec<u32> = check(response).await?.json().await?;
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let url = self.url(&format!("/subjects/{subject}/versions/{v}"));
            out.push(
                self.send(self.http.get(url))
                    .await?
                    .json::<Registered>()
                    .await?,
            );
        }
        Ok(out)
    }
}

/// The response when it succeeded; else the registry's error.
async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match serde_json::from_str::<RegistryError>(&body) {
        Ok(e) => bail!(
            "schema registry: {status}: {} ({})",
            e.message,
            e.error_code
        ),
        Err(_) => bail!("schema registry: {status}: {body}"),
    }
}

/// Registers the schemas of every topic the roles write and switches the
/// codecs to the registry's framing; does nothing without a registry URL.
pub async fn prepare(common: &CommonConfig) -> anyhow::Result<()> {
    let Some(url) = common
        .schema_registry_url
        .as_deref()
        .filter(|u| !u.is_empty())
    else {
        return Ok(());
    };
    let registry = Registry::new(url)?;
    let topics = common.topics();
    for (topic, kind) in [
        (&topics.commands, messages::Kind::Command),
        (&topics.events, messages::Kind::Outcome),
        (&topics.changelog, messages::Kind::Changelog),
    ] {
        let subject = value_subject(topic);
        registry
            .set_compatibility(&subject, "BACKWARD")
            .await
            .with_context(|| format!("setting {subject} to BACKWARD"))?;
        let id = registry
            .register(&subject, messages::current_schema(kind))
            .await
            .with_context(|| format!("registering the schema of {subject}"))?;
        let known = registry.versions(&subject).await?;
        let count = known.len();
        messages::use_registry(kind, id, &known)
            .with_context(|| format!("the schemas registered under {subject}"))?;
        tracing::info!(%subject, id, versions = count, "schema registered; messages framed for the registry");
    }
    Ok(())
}
