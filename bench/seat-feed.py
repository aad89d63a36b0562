#!/usr/bin/env python3
"""How late open seat maps show seat changes during an on-sale.

Against a running system (`scripts/run.sh`: the API on 8080, the web app on
8380), it creates one on-sale event, opens event pages on it in Debian's
chromium (tests/browser/feed-latency.mjs: desktop and phone-sized, each its
own browser context), runs `boxoffice loadgen` in open loop on the same
event, and records for every seat-feed message each page received how long
after the feed published it (the reservation-processor, right after
recording the outcome) the page had applied it and drawn the next frame. At
the end every page must show what the API's seat map says for the seats it
draws. Writes bench/results/<date>-seat-feed[-TAG].md with the machine, the
commit, the commands and every figure.

    python3 bench/seat-feed.py [--seats 20000] [--pages 4] [--rate 200]
        [--requests 4000] [--tag before]
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("page_load", os.path.join(ROOT, "bench", "page-load.py"))
page_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(page_load)


def say(*words):
    print("[seat-feed]", *words, file=sys.stderr, flush=True)


def cpu_ticks():
    """CPU ticks of every process on the host so far (user + system)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    busy = sum(int(x) for i, x in enumerate(fields) if i not in (3, 4))
    return busy, sum(int(x) for x in fields)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seats", type=int, default=20000)
    p.add_argument("--pages", type=int, default=4)
    p.add_argument("--rate", type=float, default=200, help="buyers arriving per second (open loop)")
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--tag", default="")
    p.add_argument("--api", default="http://127.0.0.1:8080")
    p.add_argument("--dashboard", default="http://127.0.0.1:8380")
    p.add_argument("--password", default=os.environ.get("BOXOFFICE_ORGANIZER_PASSWORD", "organizer"))
    p.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/boxoffice/target")), "debug", "boxoffice"))
    a = p.parse_args()

    _, org = page_load.call("POST", f"{a.api}/api/auth/organizer", body={"password": a.password})
    event, _ = page_load.create_event(a.api, org["token"], a.seats)
    url = f"{a.dashboard}/events/{event}"
    say(f"event {event} ({a.seats} seats); opening {a.pages} pages")
    pages = subprocess.Popen(["node", "feed-latency.mjs", url, a.api, str(a.pages)],
                             cwd=os.path.join(ROOT, "tests", "browser"), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in pages.stderr:
        sys.stderr.write(line)
        if line.strip() == "ready":
            break
    else:
        sys.exit(f"[seat-feed] the pages did not open: exit {pages.wait()}")

    loadgen = [a.bin, "loadgen", "--api", a.api, "--event", event, "--rate", str(a.rate),
               "--ramp-secs", "2", "--requests", str(a.requests), "--concurrency", "2000",
               "--max-quantity", "4", "--confirm-share", "0.5", "--cancel-share", "0.2"]
    say("running", " ".join(loadgen[1:]))
    before, started = cpu_ticks(), time.time()
    run = subprocess.run(loadgen, capture_output=True, text=True)
    after, elapsed = cpu_ticks(), time.time() - started
    sys.stderr.write("".join(run.stderr.splitlines(keepends=True)[-12:]))
    if run.returncode != 0:
        pages.kill()
        sys.exit(f"[seat-feed] loadgen failed: exit {run.returncode}")
    host_busy = (after[0] - before[0]) / max(1, after[1] - before[1])

    out, err = pages.communicate("stop\n", timeout=300)
    sys.stderr.write(err)
    if pages.returncode != 0:
        sys.exit(f"[seat-feed] the pages failed: exit {pages.returncode}")
    r = json.loads(out)
    lg = json.loads(run.stdout)
    summary = (f"{lg['decisions_per_s']:.0f} decisions/s, final answer p50 {lg['latency_ms_p50']:.0f} ms and "
               f"p99 {lg['latency_ms_p99']:.0f} ms, outcomes {json.dumps(lg['outcomes'])}, "
               f"invariants hold: {lg['invariants_hold']}")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    day = datetime.date.today().isoformat()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    ms = lambda d: " / ".join("-" if d[k] is None else f"{d[k]:,}" for k in ("p50", "p90", "p99", "max"))
    lines = [
        f"# Seat changes on open pages during an on-sale ({day}{', ' + a.tag if a.tag else ''})",
        "",
        f"- Machine: {os.cpu_count()} cores ({cpu}), {platform.system()}, everything on one host (loopback)",
        f"- Commit: `{commit}`{' with uncommitted changes' if dirty else ''}",
        f"- Command: `python3 bench/seat-feed.py --seats {a.seats} --pages {a.pages} --rate {a.rate:g} "
        f"--requests {a.requests}{' --tag ' + a.tag if a.tag else ''}` against `scripts/run.sh`'s system "
        "(debug server build, wasm client in the wasm-release profile), which ran "
        f"`boxoffice {' '.join(loadgen[1:])}`",
        f"- {a.pages} event pages of one {a.seats:,}-seat event in Debian's chromium, headless, every other one "
        "phone-sized; each draws the overview and one section at seat level. Latency: from the feed's "
        "`published_at_ms` (stamped by the reservation-processor right after recording the outcome) to the "
        "page having applied the message and drawn the next frame.",
        f"- The load run: {elapsed:.1f} s; the host's CPU {host_busy:.0%} busy over it. Loadgen: {summary}.",
        "",
        "| figure | p50 / p90 / p99 / max (ms) |",
        "|---|---|",
        f"| published to drawn on the page | {ms(r['published_to_drawn_ms'])} |",
        f"| published to received by the page | {ms(r['published_to_received_ms'])} |",
        f"| received to drawn | {ms(r['received_to_drawn_ms'])} |",
        "",
        f"- Feed messages received over all pages: {r['messages']:,} ({r['changes']:,} seat changes), "
        f"{r['unstamped']} without a publication time; told to reload: {r['reloads']}.",
        f"- Seats drawn on the first page at the end: {r['seats_checked']}; seats any page showed otherwise "
        f"than the API's seat map: {r['disagreement_count']}.",
    ]
    path = os.path.join(ROOT, "bench", "results", f"{day}-seat-feed{'-' + a.tag if a.tag else ''}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    say("wrote", path)
    print("\n".join(lines))
    if r["disagreement_count"]:
        sys.exit(f"[seat-feed] {r['disagreement_count']} seats shown otherwise than the API says: "
                 f"{r['disagreements'][:5]}")


if __name__ == "__main__":
    main()
