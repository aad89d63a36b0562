#!/usr/bin/env python3
"""Flamegraphs and top frames of one benchmark run, per process.

Reads a system-wide `perf record --call-graph dwarf` of the spike, splits the
samples by process (the benchmark names its own pids; PostgreSQL and Redis
are found by their command names), writes one folded-stack file per process
(`<out>/<name>.folded`, the input format of every flamegraph tool), one SVG
per process and one for the whole machine when `inferno-flamegraph` is
installed, and prints a Markdown section: each process's share of the
samples, its hottest frames by self time, and the project's own frames by
inclusive time.

    bench/flame.py perf.data OUT_DIR --name 1234=api-1 --name 99=broker ...
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

HEADER = re.compile(r"^(?P<comm>.*?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s*$")
FRAME = re.compile(r"^\s*[0-9a-f]+\s+(?P<sym>.*?)\s+\((?P<dso>[^()]*)\)\s*$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def frame_name(sym, dso):
    if sym in ("[unknown]", ""):
        return f"[{os.path.basename(dso) or 'unknown'}]"
    return OFFSET.sub("", sym)


def process_of(comm, pid, names):
    if pid in names:
        return names[pid]
    if comm.startswith("postgres"):
        return "postgres"
    if comm.startswith("redis"):
        return "redis"
    return "other"


def samples(perf_data):
    """Yields (comm, pid, frames leaf first) for every sample."""
    # --no-inline: resolving inlined frames ran addr2line per address, 5
    # minutes for 300 samples here; without it, 3 seconds.
    proc = subprocess.Popen(
        ["perf", "script", "-i", perf_data, "--no-inline", "-F", "comm,pid,tid,ip,sym,dso"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    comm, pid, frames = None, None, []
    for line in proc.stdout:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield comm, pid, frames
            comm, pid, frames = None, None, []
            continue
        if not line[0].isspace():
            m = HEADER.match(line)
            if m:
                comm, pid, frames = m["comm"], int(m["pid"]), []
            continue
        m = FRAME.match(line)
        if m and comm is not None:
            frames.append(frame_name(m["sym"], m["dso"]))
    if comm is not None:
        yield comm, pid, frames
    proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("perf_data")
    ap.add_argument("out")
    ap.add_argument("--name", action="append", default=[], help="PID=NAME")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--own", default="boxoffice", help="prefix of the project's own frames")
    args = ap.parse_args()
    names = {int(p): n for p, n in (a.split("=", 1) for a in args.name)}
    os.makedirs(args.out, exist_ok=True)

    folded = collections.defaultdict(collections.Counter)
    self_time = collections.defaultdict(collections.Counter)
    inclusive = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    for n, (comm, pid, frames) in enumerate(samples(args.perf_data), 1):
        if n % 20000 == 0:
            print(f"[flame] {n} samples read", file=sys.stderr)
        who = process_of(comm, pid, names)
        total[who] += 1
        if not frames:
            frames = ["[no stack]"]
        folded[who][";".join(reversed(frames))] += 1
        self_time[who][frames[0]] += 1
        for f in set(frames):
            if f.startswith(args.own):
                inclusive[who][f] += 1
    all_samples = sum(total.values())
    if not all_samples:
        sys.exit("no samples in the profile")

    inferno = shutil.which("inferno-flamegraph")
    for who, stacks in folded.items():
        path = os.path.join(args.out, f"{who}.folded")
        with open(path, "w") as f:
            for stack, count in stacks.most_common():
                f.write(f"{stack} {count}\n")
    with open(os.path.join(args.out, "all.folded"), "w") as f:
        for who, stacks in folded.items():
            for stack, count in stacks.most_common():
                f.write(f"{who};{stack} {count}\n")
    if inferno:
        for who in list(folded) + ["all"]:
            src = os.path.join(args.out, f"{who}.folded")
            with open(src) as i, open(os.path.join(args.out, f"{who}.svg"), "w") as o:
                subprocess.run([inferno, "--title", f"{who} during the spike", "--minwidth", "0.2"],
                               stdin=i, stdout=o, check=True)

    print("| process | share of all samples | hottest frames, self time (% of the process) |")
    print("|---|---|---|")
    for who, n in total.most_common():
        top = ", ".join(f"`{f[:90]}` {c * 100 / n:.0f}%" for f, c in self_time[who].most_common(args.top))
        print(f"| {who} | {n * 100 / all_samples:.0f}% | {top} |")
    print()
    print(f"The project's own frames by inclusive time (% of the process), top {args.top}:")
    print()
    for who, n in total.most_common():
        if not inclusive[who]:
            continue
        print(f"- **{who}**: " + "; ".join(
            f"`{f[:100]}` {c * 100 / n:.0f}%" for f, c in inclusive[who].most_common(args.top)))
    print()
    print(f"{all_samples} samples; folded stacks{' and SVGs' if inferno else ''} in `{args.out}`.")


if __name__ == "__main__":
    main()
