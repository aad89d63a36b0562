#!/usr/bin/env python3
"""Writes boxoffice's Grafana dashboards and alert rules from one description.

    python3 grafana/generate.py

Outputs (committed, mounted by Grafana as they are):
  grafana/dashboards/*.json                         dashboards
  grafana/provisioning/dashboards/boxoffice.yaml    dashboard provider
  grafana/provisioning/datasources/boxoffice.yaml   Prometheus, Tempo, Loki (trace links)
  grafana/provisioning/alerting/boxoffice.yaml      Grafana-managed alert rules
  grafana/alerts/boxoffice.rules.yml                the same alerts for Prometheus (promtool)

Every query uses the metrics the roles expose (prefix boxoffice_, labels role
and pod). The test `observability` runs every query here against a live
Prometheus during a load run; keep them answerable.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
PROM = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
POD = 'pod=~"$pod"'
API_ROUTES = 'route!~"/health.*|/metrics|unmatched"'

# ---------------------------------------------------------------- dashboards


def ts(title, targets, unit="short", w=12, h=8, stack=False, kind="timeseries"):
    return {
        "type": kind,
        "title": title,
        "datasource": PROM,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stack else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": PROM, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def stat(title, expr, unit="short", w=6, h=4, legend=""):
    p = ts(title, [(expr, legend)], unit=unit, w=w, h=h, kind="stat")
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def q(quantile, metric, by, selector=""):
    return (
        f"histogram_quantile({quantile}, sum by (le, {by}) "
        f"(rate({metric}_bucket{{{selector}}}[{RI}])))"
    )


def layout(panels):
    """Places panels left to right, wrapping at 24 columns."""
    x = y = row_h = 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        g = p["gridPos"]
        if p["type"] == "row" or x + g["w"] > 24:
            x, y = 0, y + row_h
            row_h = 0
        g["x"], g["y"] = x, y
        x += g["w"]
        row_h = max(row_h, g["h"])
        if p["type"] == "row":
            x, y, row_h = 0, y + 1, 0
    return panels


def pod_variable():
    return {
        "name": "pod",
        "label": "Pod",
        "type": "query",
        "datasource": PROM,
        "query": {"query": "label_values(boxoffice_process_start_time_seconds, pod)", "refId": "pods"},
        "definition": "label_values(boxoffice_process_start_time_seconds, pod)",
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def dashboard(uid, title, description, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["boxoffice"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "schemaVersion": 39,
        "editable": True,
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "links": [{"title": "boxoffice", "type": "dashboards", "tags": ["boxoffice"], "asDropdown": True}],
        "panels": layout(panels),
    }


OUTCOMES = "boxoffice_booking_outcomes_total"
HTTP = "boxoffice_http_request_duration_seconds"
BOOKING_ROUTE = 'route="/api/events/{id}/bookings",method="POST"'

overview = dashboard(
    "boxoffice-onsale",
    "boxoffice / On-sale overview",
    "The sale as buyers live it: bookings per second, outcomes and their reasons, seats left per event, latency of the booking call.",
    [
        stat("Bookings held / s", f'sum(rate({OUTCOMES}{{kind="booking",result="held"}}[{RI}]))', "reqps"),
        stat("Seats left (all events)", 'sum(boxoffice_event_seats{state="free"})'),
        stat("Booking p99 (API)", q(0.99, HTTP, "route", BOOKING_ROUTE), "s"),
        stat("Answers deferred (202) / s", f'sum(rate(boxoffice_api_commands_total{{result="deferred"}}[{RI}])) or vector(0)', "reqps"),
        row("Bookings"),
        ts("Booking outcomes / s by result", [(f'sum by (result) (rate({OUTCOMES}{{kind="booking"}}[{RI}]))', "{{result}}")], "reqps", stack=True),
        ts("Seats per event", [('sum by (event, state) (boxoffice_event_seats)', "{{event}} {{state}}")], "short"),
        ts("Booking requests at the API by status", [(f'sum by (status) (rate({HTTP}_count{{{BOOKING_ROUTE}}}[{RI}]))', "{{status}}")], "reqps", stack=True),
        ts("Command to outcome recorded (p50 / p99)", [
            (q(0.5, "boxoffice_command_to_record_seconds", "role"), "p50"),
            (q(0.99, "boxoffice_command_to_record_seconds", "role"), "p99"),
        ], "s"),
        ts("Deferred responses in flight", [("sum by (pod) (boxoffice_deferred_responses_in_flight)", "{{pod}}")], "short"),
        ts("API answers by result", [(f"sum by (kind, result) (rate(boxoffice_api_commands_total[{RI}]))", "{{kind}} {{result}}")], "reqps"),
        row("Front door"),
        ts("Refused by a rate limit / s (429)", [(f"sum by (limit) (rate(boxoffice_api_rate_limited_total[{RI}])) or vector(0)", "{{limit}}")], "reqps", stack=True),
        ts("Live seat maps open", [("sum by (pod) (boxoffice_api_streams_open)", "{{pod}}")], "short"),
        ts("Long polls waiting", [("sum by (pod) (boxoffice_api_long_polls_waiting)", "{{pod}}")], "short"),
    ],
)

pods = dashboard(
    "boxoffice-pods",
    "boxoffice / Pods: latency and memory",
    "Per pod of every role: request rate and latency, processing stages, allocator and RocksDB memory, tokio runtime, CPU.",
    [
        row("Requests"),
        ts("Request rate by pod", [(f'sum by (pod) (rate({HTTP}_count{{{API_ROUTES},{POD}}}[{RI}]))', "{{pod}}")], "reqps"),
        ts("p99 latency by pod", [(q(0.99, HTTP, "pod", f"{API_ROUTES},{POD}"), "{{pod}}")], "s"),
        ts("p50 latency by pod", [(q(0.5, HTTP, "pod", f"{API_ROUTES},{POD}"), "{{pod}}")], "s"),
        ts("Processing stage p99 by pod", [(q(0.99, "boxoffice_processing_stage_seconds", "pod, stage", POD), "{{pod}} {{stage}}")], "s"),
        row("Memory"),
        ts("Allocator allocated (jemalloc) by pod", [(f'sum by (pod) (boxoffice_allocator_bytes{{kind="allocated",{POD}}})', "{{pod}}")], "bytes"),
        ts("Allocator resident (jemalloc) by pod", [(f'sum by (pod) (boxoffice_allocator_bytes{{kind="resident",{POD}}})', "{{pod}}")], "bytes"),
        ts("Process RSS by pod", [(f"sum by (pod) (boxoffice_process_resident_memory_bytes{{{POD}}})", "{{pod}}")], "bytes"),
        ts("RocksDB memory by pod", [(f'sum by (pod, kind) (boxoffice_rocksdb_bytes{{kind=~"memtables|block_cache|table_readers",{POD}}})', "{{pod}} {{kind}}")], "bytes", stack=True),
        row("Runtime"),
        ts("CPU by pod", [(f"sum by (pod) (rate(boxoffice_process_cpu_seconds_total{{{POD}}}[{RI}]))", "{{pod}}")], "percentunit"),
        ts("Tokio alive tasks by pod", [(f'sum by (pod) (boxoffice_tokio_runtime{{kind="alive_tasks",{POD}}})', "{{pod}}")], "short"),
        ts("Tokio global queue depth by pod", [(f'sum by (pod) (boxoffice_tokio_runtime{{kind="global_queue_depth",{POD}}})', "{{pod}}")], "short"),
        ts("Open file descriptors by pod", [(f"sum by (pod) (boxoffice_process_open_fds{{{POD}}})", "{{pod}}")], "short"),
    ],
    [pod_variable()],
)

kafka = dashboard(
    "boxoffice-kafka",
    "boxoffice / Kafka: queue depth",
    "Consumer lag per topic and partition as each consumer sees it, partitions owned, batch sizes and restores.",
    [
        ts("Consumer lag by topic and partition", [("sum by (topic, partition) (boxoffice_kafka_consumer_lag)", "{{topic}}/{{partition}}")], "short", w=24),
        ts("Consumer lag by pod", [(f"sum by (pod) (boxoffice_kafka_consumer_lag{{{POD}}})", "{{pod}}")], "short"),
        ts("Partitions owned by pod", [(f"sum by (pod) (boxoffice_owned_partitions{{{POD}}})", "{{pod}}")], "short"),
        ts("Seat-processor commands / s by result", [(f"sum by (kind, result) (rate(boxoffice_seat_commands_total[{RI}]))", "{{kind}} {{result}}")], "reqps", stack=True),
        ts("Seat-processor batch size (p50 / p99)", [
            (q(0.5, "boxoffice_seat_batch_size", "role"), "p50"),
            (q(0.99, "boxoffice_seat_batch_size", "role"), "p99"),
        ], "short"),
        ts("Partition restores", [(f"sum by (pod) (increase(boxoffice_seat_restores_total[{RI}])) or vector(0)", "{{pod}}")], "short"),
        ts("Writers fenced (another writer on the changelog)", [(f"sum by (pod) (increase(boxoffice_seat_writer_fenced_total[{RI}])) or vector(0)", "{{pod}}")], "short"),
        ts("Dead letters by source and reason", [(f"sum by (source_topic, reason) (increase(boxoffice_dead_letters_total[{RI}])) or vector(0)", "{{source_topic}} {{reason}}")], "short"),
        ts("Partitions refused", [("sum by (pod, partition) (boxoffice_seat_partition_refused) or vector(0)", "{{pod}} {{partition}}")], "short"),
        ts("Hold expiries sent / s", [(f"sum(rate(boxoffice_hold_expiry_commands_total[{RI}])) or vector(0)", "expiries")], "reqps"),
    ],
    [pod_variable()],
)

deps = dashboard(
    "boxoffice-dependencies",
    "boxoffice / Dependencies",
    "PostgreSQL, Redis and the broker as each pod sees them: probe results and durations, connection pools, unavailability answers.",
    [
        ts("Dependency up (1) by pod", [(f"min by (pod, dependency) (boxoffice_dependency_up{{{POD}}})", "{{pod}} {{dependency}}")], "short"),
        ts("Probe duration by dependency", [(f"max by (dependency) (boxoffice_dependency_probe_seconds{{{POD}}})", "{{dependency}}")], "s"),
        ts("Pool connections in use by pod", [(f'sum by (pod, pool) (boxoffice_pool_connections{{state="in_use",{POD}}})', "{{pod}} {{pool}}")], "short"),
        ts("Pool waiters by pod", [(f'sum by (pod, pool) (boxoffice_pool_connections{{state="waiting",{POD}}})', "{{pod}} {{pool}}")], "short"),
        ts("PostgreSQL and Redis write time (p99)", [(q(0.99, "boxoffice_processing_stage_seconds", "stage", 'stage=~"write_postgres|write_redis"'), "{{stage}}")], "s"),
        ts("Broker writes (p99): outcomes and changelog", [(q(0.99, "boxoffice_processing_stage_seconds", "stage", 'stage=~"publish_outcomes|append_changelog"'), "{{stage}}")], "s"),
        ts("503 answers / s", [(f'sum(rate({HTTP}_count{{status="503"}}[{RI}])) or vector(0)', "503")], "reqps"),
    ],
    [pod_variable()],
)

DASHBOARDS = {
    "onsale-overview.json": overview,
    "pods.json": pods,
    "kafka.json": kafka,
    "dependencies.json": deps,
}

# -------------------------------------------------------------------- alerts
# (uid, title, query returning the watched value, operator, threshold, for, severity, summary)
ALERTS = [
    (
        "boxoffice-error-rate",
        "API error rate above 5%",
        f'(sum(rate({HTTP}_count{{status=~"5.."}}[5m])) or vector(0)) / clamp_min(sum(rate({HTTP}_count{{{API_ROUTES}}}[5m])), 1e-9)',
        ">", 0.05, "2m", "page",
        "More than 5% of API requests answer 5xx: a dependency is down or a role is failing.",
    ),
    (
        "boxoffice-booking-p99",
        "Booking p99 latency above 2.5 s",
        f"histogram_quantile(0.99, sum by (le) (rate({HTTP}_bucket{{{BOOKING_ROUTE}}}[5m])))",
        ">", 2.5, "5m", "page",
        "The booking call's p99 nears the 3 s deadline: buyers start getting 202s instead of answers.",
    ),
    (
        "boxoffice-lag-growing",
        "Consumer lag growing",
        "sum by (topic) (boxoffice_kafka_consumer_lag) * on (topic) group_left () "
        "(sum by (topic) (delta(boxoffice_kafka_consumer_lag[5m])) > bool 0)",
        ">", 500, "5m", "warn",
        "More than 500 messages wait on a topic and the backlog keeps growing: processors do not keep up.",
    ),
    (
        "boxoffice-processor-stalled",
        "Processor stalled",
        "max by (pod) ((sum by (pod) (boxoffice_kafka_consumer_lag) > bool 0) "
        "* on (pod) (sum by (pod) (increase(boxoffice_seat_commands_total[5m]) or increase(boxoffice_booking_outcomes_total[5m])) == bool 0))",
        ">", 0, "5m", "page",
        "A processor has messages waiting but applied nothing for 5 minutes.",
    ),
    (
        "boxoffice-dead-letters",
        "Messages sent to the dead-letter topic",
        'sum(increase(boxoffice_dead_letters_total{reason!="double_sale"}[10m])) or vector(0)',
        ">", 0, "0m", "warn",
        "A command or outcome could not be read or recorded and went to the dead-letter topic: inspect it there (headers say why).",
    ),
    (
        "boxoffice-double-sale-refused",
        "PostgreSQL refused a second booking of a seat",
        'sum(increase(boxoffice_dead_letters_total{reason="double_sale"}[10m])) or vector(0)',
        ">", 0, "0m", "page",
        "An outcome would have given a seat to a second booking; the database refused it. The seat-state protocol was broken: stop the sale and investigate.",
    ),
    (
        "boxoffice-partition-refused",
        "Seat-processor refuses a partition",
        "max by (pod, partition) (boxoffice_seat_partition_refused)",
        ">", 0, "1m", "page",
        "booking-commands lost commands that were applied (topic re-created, or retention): the partition's bookings stay unanswered until an operator acts.",
    ),
    (
        "boxoffice-dependency-down",
        "Dependency down",
        "min by (role, pod, dependency) (boxoffice_dependency_up)",
        "<", 1, "1m", "page",
        "A pod cannot reach PostgreSQL, Redis or the broker.",
    ),
    (
        "boxoffice-rate-limits-uncounted",
        "Rate limits cannot be counted",
        "sum(rate(boxoffice_api_rate_limit_errors_total[5m])) or vector(0)",
        ">", 0, "5m", "warn",
        "Redis does not answer the API's rate-limit checks: traffic limits are open and organizer sign-in is refused (docs/front-door.md).",
    ),
    (
        "boxoffice-instance-down",
        "boxoffice instance down",
        'up{job=~"boxoffice.*"}',
        "<", 1, "1m", "page",
        "Prometheus cannot scrape a boxoffice pod.",
    ),
]

GRAFANA_OPS = {">": "gt", "<": "lt"}


def grafana_rule(uid, title, query, op, threshold, for_, severity, summary):
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": PROM["uid"],
                "model": {"refId": "A", "expr": query, "instant": True, "intervalMs": 1000, "maxDataPoints": 43200},
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": GRAFANA_OPS[op], "params": [threshold]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": for_,
        "labels": {"severity": severity, "service": "boxoffice"},
        "annotations": {"summary": summary, "dashboardUid": "boxoffice-onsale"},
    }


def yaml_dump(value, indent=0):
    """A small YAML writer (JSON-compatible scalars), so no PyYAML is needed."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(yaml_dump(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {scalar(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, dict) and v:
                inner = yaml_dump(v, indent + 1).split("\n")
                lines.append(f"{pad}- {inner[0].strip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {scalar(v)}")
        return "\n".join(lines)
    return pad + scalar(value)


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return json.dumps(str(v))


def main():
    header = "# Generated by grafana/generate.py; edit that, then run it.\n"
    (ROOT / "dashboards").mkdir(exist_ok=True)
    for name, d in DASHBOARDS.items():
        (ROOT / "dashboards" / name).write_text(json.dumps(d, indent=2) + "\n")

    prov = ROOT / "provisioning"
    for sub in ("dashboards", "datasources", "alerting"):
        (prov / sub).mkdir(parents=True, exist_ok=True)
    (prov / "dashboards" / "boxoffice.yaml").write_text(header + yaml_dump({
        "apiVersion": 1,
        "providers": [{
            "name": "boxoffice",
            "folder": "boxoffice",
            "type": "file",
            "disableDeletion": False,
            "updateIntervalSeconds": 30,
            "options": {"path": "/var/lib/grafana/dashboards/boxoffice", "foldersFromFilesStructure": False},
        }],
    }) + "\n")
    (prov / "datasources" / "boxoffice.yaml").write_text(header + yaml_dump({
        "apiVersion": 1,
        "datasources": [
            {"name": "Prometheus", "type": "prometheus", "uid": "prometheus", "access": "proxy",
             "url": "http://localhost:9090", "isDefault": True,
             "jsonData": {"timeInterval": "5s"}},
            {"name": "Tempo", "type": "tempo", "uid": "tempo", "access": "proxy", "url": "http://localhost:3200",
             "jsonData": {"tracesToLogsV2": {"datasourceUid": "loki", "filterByTraceID": True}}},
            {"name": "Loki", "type": "loki", "uid": "loki", "access": "proxy", "url": "http://localhost:3100",
             "jsonData": {"derivedFields": [{"name": "trace_id", "matcherType": "label", "matcherRegex": "trace_id",
                                              "datasourceUid": "tempo", "url": "$${__value.raw}"}]}},
        ],
    }) + "\n")
    (prov / "alerting" / "boxoffice.yaml").write_text(header + yaml_dump({
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": "boxoffice",
            "folder": "boxoffice",
            "interval": "1m",
            "rules": [grafana_rule(*a) for a in ALERTS],
        }],
    }) + "\n")
    (ROOT / "alerts").mkdir(exist_ok=True)
    (ROOT / "alerts" / "boxoffice.rules.yml").write_text(header + yaml_dump({
        "groups": [{
            "name": "boxoffice",
            "rules": [
                {
                    "alert": "".join(w.capitalize() for w in uid.split("-")),
                    "expr": f"({query}) {op} {threshold}",
                    "for": for_,
                    "labels": {"severity": severity, "service": "boxoffice"},
                    "annotations": {"summary": summary, "title": title},
                }
                for uid, title, query, op, threshold, for_, severity, summary in ALERTS
            ],
        }],
    }) + "\n")
    print(f"wrote {len(DASHBOARDS)} dashboards and {len(ALERTS)} alerts under {ROOT}")


if __name__ == "__main__":
    main()
