//! The README's configuration reference is what the binary reads: the
//! section between the markers equals `boxoffice config-reference`.

use std::process::Command;

#[test]
fn the_readme_lists_every_variable_the_binary_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .arg("config-reference")
        .output()
        .expect("run boxoffice config-reference");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    for var in [
        "KAFKA_BOOTSTRAP_SERVERS",
        "BOXOFFICE_SCHEMA_REGISTRY_URL",
        "BOXOFFICE_ADMISSION_MAX",
        "RUST_LOG",
    ] {
        assert!(
            generated.contains(&format!("`{var}`")),
            "{var} missing:\n{generated}"
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("<!-- config-reference:start -->\n")
        .nth(1)
        .and_then(|rest| rest.split("<!-- config-reference:end -->").next())
        .expect("README has the config-reference markers");
    assert!(
        section == generated,
        "README's configuration reference is stale: replace the section between the markers with \
         the output of `boxoffice config-reference`"
    );
}
