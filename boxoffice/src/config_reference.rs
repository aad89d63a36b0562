//! `boxoffice config-reference`: every environment variable the binary
//! reads, per role, with its default and meaning, as Markdown. The README's
//! "Configuration reference" is this output (a test keeps them equal), and
//! scripts/check-deploy.py checks the manifests, the chart and compose.yaml
//! against it.

use std::fmt::Write;

use clap::{Arg, Command};

/// Variables read outside clap, by the logging and telemetry set-up, the
/// same in every role: name, default, meaning.
const LIBRARY_VARIABLES: &[(&str, &str, &str)] = &[
    (
        "RUST_LOG",
        "`info,rdkafka=warn,actix_server=warn,h2=warn,tower=warn`",
        "Log filter (tracing's `EnvFilter` syntax); logs are JSON lines on stdout.",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "unset",
        "OTLP collector for traces and metrics; unset, nothing is exported.",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "`OTEL_EXPORTER_OTLP_ENDPOINT`",
        "OTLP collector for metrics only.",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "`grpc`",
        "`grpc` or `http/protobuf`.",
    ),
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "`60000`",
        "Milliseconds between OTLP metric exports.",
    ),
    (
        "HOSTNAME",
        "unset",
        "The instance name when `BOXOFFICE_INSTANCE` is unset.",
    ),
];

/// Whether a variable must be set outside the local stack: clap requires
/// it, it is a secret (its built-in default is for the local stack only),
/// or its default points at this machine.
fn set_in_cluster(arg: &Arg, default: &str) -> bool {
    arg.is_required_set() || arg.is_hide_env_values_set() || default.contains("127.0.0.1")
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn role_table(out: &mut String, role: &Command) {
    let _ = writeln!(out, "### `boxoffice {}`\n", role.get_name());
    if let Some(about) = role.get_about() {
        let _ = writeln!(out, "{}\n", one_line(&about.to_string()));
    }
    out.push_str("| Variable | Default | Set in a cluster | Meaning |\n|---|---|---|---|\n");
    for arg in role.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = defaults.join(",");
        let shown = if arg.is_hide_env_values_set() && !default.is_empty() {
            "built-in, local only".to_owned()
        } else if default.is_empty() {
            if arg.is_required_set() {
                "required"
            } else {
                "unset"
            }
            .to_owned()
        } else {
            format!("`{default}`")
        };
        let must = if set_in_cluster(arg, &default) {
            "yes"
        } else {
            "no"
        };
        let help = arg
            .get_help()
            .map(|h| one_line(&h.to_string()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | {shown} | {must} | {help} |",
            env.to_string_lossy()
        );
    }
    out.push('\n');
}

/// The reference for every subcommand of `cli` that reads variables.
pub fn markdown(cli: &Command) -> String {
    let mut out = String::new();
    for role in cli.get_subcommands() {
        if role.get_arguments().any(|a| a.get_env().is_some()) {
            role_table(&mut out, role);
        }
    }
    out.push_str("### Every role: read by logging and telemetry\n\n");
    out.push_str("| Variable | Default | Set in a cluster | Meaning |\n|---|---|---|---|\n");
    for (name, default, meaning) in LIBRARY_VARIABLES {
        let _ = writeln!(out, "| `{name}` | {default} | no | {meaning} |");
    }
    out
}
