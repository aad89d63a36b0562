#!/usr/bin/env python3
"""The web app's page-load benchmark at venue sizes from a hall to a stadium.

Against a running system (`scripts/run.sh`: the API on 8080, the web app on
8380), it creates one on-sale event per size through the API (as the house
organizer), sells a share of each so the page carries real seat states, and
runs tests/browser/load-time.mjs (Debian's chromium, headless, a fresh
browser context per visit) on each event page. It writes
bench/results/<date>-page-load[-TAG].md with the machine, the commit, the
command and every figure.

    python3 bench/page-load.py [--sizes 600,20000,80000] [--visits 5]
        [--sold 0.5] [--tag after] [--api URL] [--dashboard URL]
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEATS_PER_ROW = 25
ROWS = 20  # a section of 500 seats


def say(*words):
    print("[page-load]", *words, file=sys.stderr, flush=True)


def call(method, url, token=None, body=None, headers=None):
    """One API call; a 503 is asked again as the API says (after
    `Retry-After`, with the same Idempotency-Key), for up to 90 s."""
    data = json.dumps(body).encode() if body is not None else None
    deadline = time.monotonic() + 90
    while True:
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if e.code != 503 or time.monotonic() > deadline:
                sys.exit(f"[page-load] {method} {url}: {e.code} {text}")
            wait = float(e.headers.get("Retry-After") or 1)
            say(f"{method} {url}: 503, asking again in {wait:g} s: {text}")
            time.sleep(wait)


def create_event(api, token, seats):
    """An on-sale event of `seats` seats in sections of 500 (or one smaller
    section); answers its id and section codes."""
    sections = []
    left, i = seats, 0
    while left > 0:
        i += 1
        rows = min(ROWS, -(-left // SEATS_PER_ROW))
        sections.append({
            "code": f"S{i:03}", "name": f"Block {i}",
            "price_category": "PREMIUM" if i % 4 == 1 else "STANDARD",
            "rows": [{"label": str(r), "seats": min(SEATS_PER_ROW, left - (r - 1) * SEATS_PER_ROW)}
                     for r in range(1, rows + 1)],
        })
        left -= sum(r["seats"] for r in sections[-1]["rows"])
    now = datetime.datetime.now(datetime.timezone.utc)
    body = {
        "name": f"Page load, {seats} seats",
        "starts_at": (now + datetime.timedelta(days=30)).isoformat(),
        "sale_opens_at": (now - datetime.timedelta(minutes=1)).isoformat(),
        "sale_closes_at": (now + datetime.timedelta(days=29)).isoformat(),
        "venue": {"name": "Bench Arena", "sections": sections},
        "price_categories": [
            {"code": "PREMIUM", "name": "Premium", "price_cents": 12900, "currency": "EUR"},
            {"code": "STANDARD", "name": "Standard", "price_cents": 7900, "currency": "EUR"},
        ],
        "max_seats_per_buyer": 50,
        "hold_duration_seconds": 3600,
        "parts": min(4, len(sections)),
    }
    status, event = call("POST", f"{api}/api/events", token, body)
    assert status in (201, 202), (status, event)
    return event["id"], sections


def sell(api, event, sections, share):
    """Holds about `share` of the seats, 50 per guest buyer (two rows)."""
    orders = []
    for s in sections:
        seats = [f"{s['code']}-{r['label']}-{n}" for r in s["rows"] for n in range(1, r["seats"] + 1)]
        orders += [seats[i:i + 50] for i in range(0, len(seats), 50)]
    want = int(len(orders) * share)
    for i, seats in enumerate(orders[:want]):
        # Each buyer from an address of its own, as a proxy the local API
        # trusts would say: the limits on new buyers count per address.
        who = {"X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
        _, guest = call("POST", f"{api}/api/auth/buyer", headers=who)
        status, _ = call("POST", f"{api}/api/events/{event}/bookings", guest["token"], {"seats": seats},
                         {"Idempotency-Key": f"page-load-{event}-{i}", **who})
        assert status in (201, 202), status
        if i % 50 == 49:
            say(f"  {i + 1}/{want} orders of 50 seats")
    return want * 50


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="600,20000,80000")
    p.add_argument("--visits", type=int, default=5)
    p.add_argument("--sold", type=float, default=0.5, help="share of each venue held before the visits")
    p.add_argument("--tag", default="")
    p.add_argument("--api", default="http://127.0.0.1:8080")
    p.add_argument("--dashboard", default="http://127.0.0.1:8380")
    p.add_argument("--password", default=os.environ.get("BOXOFFICE_ORGANIZER_PASSWORD", "organizer"))
    a = p.parse_args()
    _, org = call("POST", f"{a.api}/api/auth/organizer", body={"password": a.password})
    rows = []
    for seats in [int(s) for s in a.sizes.split(",")]:
        say(f"{seats} seats: creating the event")
        event, sections = create_event(a.api, org["token"], seats)
        taken = sell(a.api, event, sections, a.sold)
        say(f"{seats} seats: {taken} held; visiting the page {a.visits} times")
        out = subprocess.run(
            ["node", "load-time.mjs", f"{a.dashboard}/events/{event}", str(a.visits)],
            cwd=os.path.join(ROOT, "tests", "browser"), capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        if out.returncode != 0:
            rows.append((seats, taken, None, out.stderr.strip().splitlines()[-1:]))
            continue
        rows.append((seats, taken, json.loads(out.stdout), None))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    day = datetime.date.today().isoformat()
    name = f"{day}-page-load{'-' + a.tag if a.tag else ''}.md"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"# Web app page load by venue size ({day}{', ' + a.tag if a.tag else ''})",
        "",
        f"- Machine: {os.cpu_count()} cores ({cpu}), {platform.system()}, everything on one host (loopback)",
        f"- Commit: `{commit}`{' with uncommitted changes' if dirty else ''}",
        f"- Command: `python3 bench/page-load.py --sizes {a.sizes} --visits {a.visits} --sold {a.sold}"
        f"{' --tag ' + a.tag if a.tag else ''}` against `scripts/run.sh`'s system (debug server build, "
        "wasm client in the wasm-release profile)",
        f"- Each event: sections of 500 seats (20 rows of 25), {int(a.sold * 100)} % of the seats held before "
        "the visits; each visit a fresh browser context (cold cache) in Debian's chromium, headless. "
        "Interactive: the wasm client has hydrated the page (`body[data-hydrated]`).",
        "",
        "| seats | interactive p50 / p90 / max (ms) | HTML received p50 (ms) | HTML bytes | everything transferred (bytes) |",
        "|---|---|---|---|---|",
    ]
    for seats, taken, r, err in rows:
        if r is None:
            lines.append(f"| {seats:,} | not interactive: {err} | | | |")
            continue
        i = r["interactive_ms"]
        lines.append(f"| {seats:,} | {i['p50']:,} / {i['p90']:,} / {i['max']:,} | {r['html_ms']['p50']:,} | "
                     f"{r['html_bytes']:,} | {r['total_bytes']:,} |")
    path = os.path.join(ROOT, "bench", "results", name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    say("wrote", path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
