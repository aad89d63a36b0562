//! The API's published contract under generated and hostile input:
//! schemathesis (PyPI, installed by `scripts/stack.sh install`) reads
//! `/api/openapi.json` from a running system and sends each operation
//! examples, boundary values and schema-violating requests. It fails on any
//! 5xx, any status, header, content type or body the document does not
//! promise (every error response admits only the codes it lists), and any
//! invalid request that is accepted.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::Stack;

fn schemathesis() -> PathBuf {
    let tools = std::env::var_os("BOXOFFICE_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/boxoffice/tools"),
        PathBuf::from,
    );
    let bin = tools.join("schemathesis/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/stack.sh install",
        bin.display()
    );
    bin
}

/// One schemathesis run as the holder of `token` over the operations
/// `filter` selects; panics with its report when anything fails.
fn run(api: &str, token: &str, filter: &[&str], name: &str) {
    let checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "ignored_auth",
    ];
    let out = Command::new(schemathesis())
        // It keeps a cache where it runs: not in the checkout.
        .current_dir(std::env::temp_dir())
        .arg("run")
        .arg(format!("{api}/api/openapi.json"))
        .args(["--checks", &checks.join(",")])
        .args(["--max-examples", "30", "--seed", "20261202"])
        // Not the coverage phase: schemathesis 4.32.5 fails there now and
        // then inside hypothesis (a SystemError from `ast.parse` while it
        // describes a filter lambda), whatever the API answers.
        .args(["--phases", "examples,fuzzing"])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "2",
        ])
        .args(["--request-timeout", "10"])
        // A live stream never ends by itself; it is checked in
        // booking_api and front_door.
        .args(["--exclude-path-regex", "/seats/stream$"])
        .args(filter)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- schemathesis, {name} ---\n{report}");
    assert!(
        out.status.success(),
        "schemathesis found problems ({name}):\n{report}"
    );
    assert!(
        report.contains("passed") || report.contains("Passed"),
        "schemathesis tested nothing ({name}):\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_keeps_its_published_contract_under_generated_and_hostile_input() {
    let mut stack = Stack::new("contract");
    stack.start("reservation-processor", "reservation-1").await;
    stack.start("seat-processor", "seat-1").await;
    stack
        .start_with(
            "api",
            "api-1",
            &[
                // Generated long polls and bookings answer within a second.
                ("BOXOFFICE_LONG_POLL_MAX_MS", "300"),
                ("BOXOFFICE_BOOKING_DEADLINE_MS", "1000"),
            ],
        )
        .await;
    let api = stack.api("api-1");
    // Something to find: an event on sale, a buyer and an organizer.
    stack.create_event(&api, 2, 3, 10, 600).await;
    let (_, buyer) = stack.buyer_token(&api).await;
    let organizer = stack.organizer_token(&api).await;
    let api2 = api.clone();
    tokio::task::spawn_blocking(move || {
        run(&api2, &buyer, &[], "as a buyer, every operation");
        run(
            &api2,
            &organizer,
            &["--include-tag", "events"],
            "as an organizer, the event operations",
        );
    })
    .await
    .unwrap();
    // Nothing crashed underneath either.
    for instance in ["api-1", "seat-1", "reservation-1"] {
        let log = stack.log_tail(instance, 100_000);
        assert!(!log.contains("panicked"), "{instance} panicked:\n{log}");
    }
}
