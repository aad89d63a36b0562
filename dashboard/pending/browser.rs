//! The web app in a real browser: playwright-core drives Debian's chromium
//! against the whole system (API, processors, broker, PostgreSQL, Redis) and
//! the `dashboard` role serving the wasm client built by
//! scripts/build-web.sh. Screenshots land in `$CARGO_TARGET_DIR/screenshots`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::Stack;

/// `$CARGO_TARGET_DIR`, found from this test binary (`<target>/debug/deps/..`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buyer_holds_seats_in_the_browser_and_a_taken_seat_is_refused() {
    let site = target_dir().join("site");
    assert!(
        site.join("pkg/dashboard_bg.wasm").exists(),
        "no wasm client in {}: run scripts/build-web.sh",
        site.display()
    );
    let mut stack = Stack::new("browser");
    let api = stack.start_all().await;
    let event = stack.create_event(&api, 2, 6, 14, 600).await;
    stack.extra_env = vec![
        ("BOXOFFICE_API_URL".into(), api.clone()),
        ("BOXOFFICE_SITE_DIR".into(), site.display().to_string()),
    ];
    let port = stack.start("dashboard", "dashboard-1").await;
    let shots = target_dir().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let out = tokio::task::block_in_place(|| {
        Command::new("node")
            .current_dir(repo().join("tests/browser"))
            .arg("buyer.mjs")
            .arg(format!("http://127.0.0.1:{port}"))
            .arg(&api)
            .arg(&event)
            .arg(&shots)
            .output()
            .expect("node (tests/browser needs `npm install`, done by scripts/stack.sh install)")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.log_tail("dashboard-1", 20)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
    eprintln!("[browser] {summary}; screenshots in {}", shots.display());
    assert_eq!(summary["held"], true);
    assert_eq!(summary["taken_seat_refused"], true);
    assert_eq!(summary["listed"], true);
}
