#!/usr/bin/env python3
"""Counts the requests every Kafka client sent to the broker, from a capture.

Reads a pcap of the client-to-broker direction (`tcpdump -i lo -w F dst port
9092`), puts each TCP connection's bytes back in order, and parses the Kafka
request frames in them (size, api_key, api_version, correlation_id,
client_id). Prints a Markdown table of requests by client and API, and per
decision when `--decisions` is given. The client is the `client.id` each
request carries; boxoffice's roles set it to their instance name.

    bench/kafka-requests.py capture.pcap --decisions 63000
"""
import argparse
import collections
import re
import struct
import sys

API = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
       9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
       13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
       17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 22: "InitProducerId",
       32: "DescribeConfigs", 36: "SaslAuthenticate", 60: "DescribeCluster",
       68: "ConsumerGroupHeartbeat"}
# The capture starts mid-stream on connections opened before it: a frame is
# believed only where its header looks like one.
MAX_FRAME = 100 * 1024 * 1024


def packets(path):
    """Yields (flow, seq, payload) for every TCP segment with data."""
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", head[20:24])[0]
        link_len = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype)
        if link_len is None:
            sys.exit(f"link type {linktype} not handled")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, _ = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            ip = data[link_len:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:total]
            if len(tcp) < 20:
                continue
            sport, dport, seq = struct.unpack(">HHI", tcp[:8])
            off = (tcp[12] >> 4) * 4
            payload = tcp[off:]
            if payload:
                yield (ip[12:16], sport, ip[16:20], dport), seq, payload


def plausible(buf):
    if len(buf) < 14:
        return True  # too short to tell yet
    size, api_key, version = struct.unpack(">ihh", buf[:8])
    return 8 <= size <= MAX_FRAME and 0 <= api_key < 80 and 0 <= version <= 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--decisions", type=float, default=0)
    ap.add_argument("--group", default=r"-\d+$", help="regex removed from client ids to group instances")
    args = ap.parse_args()

    flows = {}  # flow -> [next_seq, buffer, synced]
    counts = collections.Counter()
    frames = 0
    for flow, seq, payload in packets(args.pcap):
        state = flows.setdefault(flow, [seq, bytearray(), False])
        nxt, buf, synced = state
        if seq != nxt:
            if (seq - nxt) % 2**32 > 2**31:
                continue  # a retransmission of bytes already seen
            # A gap (dropped by the capture): wait for a segment that starts
            # a frame, as on a connection first seen mid-stream.
            buf.clear()
            synced = False
        state[0] = (seq + len(payload)) % 2**32
        if not synced and not plausible(payload):
            state[2] = False
            continue
        synced = True
        buf += payload
        while len(buf) >= 14:
            size, api_key = struct.unpack(">ih", buf[:6])
            if not 8 <= size <= MAX_FRAME:
                buf.clear()
                synced = False
                break
            if len(buf) < 4 + size:
                break
            cid_len = struct.unpack(">h", buf[12:14])[0]
            client = buf[14:14 + cid_len].decode(errors="replace") if cid_len > 0 else "?"
            counts[(re.sub(args.group, "", client), API.get(api_key, f"api {api_key}"))] += 1
            frames += 1
            del buf[:4 + size]
        state[2] = synced

    if not frames:
        sys.exit("no Kafka requests in the capture")
    clients = sorted({c for c, _ in counts})
    apis = [a for a, _ in collections.Counter(a for (_, a) in counts.elements()).most_common()]
    per = f" (per decision, {args.decisions:.0f} decisions)" if args.decisions else ""
    print(f"| client{per} | " + " | ".join(apis) + " | all |")
    print("|---|" + "---|" * (len(apis) + 1))

    def cell(n):
        return f"{n / args.decisions:.3f}" if args.decisions else str(n)

    for c in clients + ["all"]:
        row = [sum(v for (cc, a), v in counts.items() if (c == "all" or cc == c) and a == api) for api in apis]
        print(f"| {c} | " + " | ".join(cell(n) for n in row) + f" | {cell(sum(row))} |")
    print()
    print(f"{frames} requests in {len(flows)} connections.")


if __name__ == "__main__":
    main()
