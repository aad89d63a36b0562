//! The roles with a schema registry (`BOXOFFICE_SCHEMA_REGISTRY_URL`): they
//! register their schemas under `<topic>-value` with BACKWARD compatibility
//! at start, and every message on the topics is framed as the registry's
//! serializers frame it (a zero byte, the 4-byte schema id, the datum). The
//! registry is the stand-in of tests/support/registry.rs, held to the
//! documented exchanges of the real one first.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::registry::StandIn;
use support::{Stack, hold_and_pay, kafka};

/// Replays the documented exchanges against a fresh stand-in: same status,
/// same body (the wording of error messages aside).
#[tokio::test]
async fn the_stand_in_answers_as_the_documented_registry() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/schema-registry.json")).unwrap();
    let registry = StandIn::start().await;
    let http = reqwest::Client::new();
    for x in fixture["exchanges"].as_array().unwrap() {
        let method: reqwest::Method = x["method"].as_str().unwrap().parse().unwrap();
        let path = x["path"].as_str().unwrap();
        let mut req = http
            .request(method.clone(), format!("{}{path}", registry.url()))
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(body) = x.get("body") {
            req = req
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let mut got: Value = res.json().await.unwrap();
        let mut want = x["response"].clone();
        for v in [&mut got, &mut want] {
            if let Some(o) = v.as_object_mut() {
                o.remove("message");
            }
        }
        assert_eq!(
            (status, &got),
            (x["status"].as_u64().unwrap() as u16, &want),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_register_their_schemas_and_frame_messages_for_the_registry() {
    let registry = StandIn::start().await;
    let mut stack = Stack::new("registry");
    stack
        .extra_env
        .push(("BOXOFFICE_SCHEMA_REGISTRY_URL".into(), registry.url()));
    let api = stack.start_all().await;

    // Every topic the roles write has its subject, BACKWARD, with the
    // schema this version writes.
    let ids: Vec<(String, u32)> = {
        let reg = registry.state.lock().unwrap();
        ["booking-commands", "booking-events", "seat-changelog"]
            .iter()
            .map(|t| {
                let subject = format!("{}{t}-value", stack.prefix);
                assert_eq!(
                    reg.compatibility.get(&subject).map(String::as_str),
                    Some("BACKWARD"),
                    "{subject}"
                );
                let versions = &reg.subjects[&subject];
                assert_eq!(versions.len(), 1, "{subject}: {versions:?}");
                (format!("{}{t}", stack.prefix), versions[0])
            })
            .collect()
    };

    // A booking goes through end to end: each role read what another wrote.
    let event = stack.create_event(&api, 1, 2, 4, 600).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    let paid = hold_and_pay(
        &stack,
        &api,
        &event,
        &buyer,
        "reg-1",
        json!({"seats": ["A-1-1", "A-1-2"]}),
    )
    .await;
    assert_eq!(paid["status"], "confirmed", "{paid}");
    let (s, map) = stack.seat_map(&api, &event).await;
    assert_eq!(s, 200, "{map}");
    assert_eq!(map["seats"]["A-1-2"], "sold", "{map}");

    // Every record on the three topics carries the registry's framing and
    // its topic's id; none the self-describing encoding.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let broker = stack.broker();
    for (topic, id) in &ids {
        let mut framed = 0;
        for partition in 0..4 {
            for (_, value) in kafka::read_partition(&broker, topic, partition) {
                let Some(value) = value else { continue };
                assert_eq!(
                    value[0],
                    0,
                    "{topic}: not registry-framed: {:02x?}",
                    &value[..value.len().min(10)]
                );
                assert_eq!(
                    u32::from_be_bytes(value[1..5].try_into().unwrap()),
                    *id,
                    "{topic}"
                );
                framed += 1;
            }
        }
        assert!(framed > 0, "{topic} holds no records");
    }
}
