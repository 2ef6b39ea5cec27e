#!/usr/bin/python3
"""Turns bench_parser's output into result rows (JSON lines on stdout).

    report.py TIMING.jsonl [CALLGRIND_DIR]

TIMING.jsonl: bench_parser's timing lines. CALLGRIND_DIR: the files
callgrind dumped for `bench_parser --callgrind N1 N2` (one per
CALLGRIND_DUMP_STATS_AT, labelled case/parser/iterations/messages).
"""

import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bench  # noqa: E402

HTTP_CASES = {
    "seed-post": "the seed's 120-byte POST /userlist.txt REGISTER",
    "browser-get": "a 520-byte browser GET",
    "pipelined-1000": "1000 pipelined requests, 16 KiB reads",
}
RELAY_CASES = {
    "relay-send-64": 64,
    "relay-send-1k": 1024,
    "relay-send-64k": 65536,
}
GOAL = 1.5  # ours/llhttp in requests/s (issue #4)
PICO_GOAL = 1.0  # ours/picohttpparser in requests/s (issue #11)
RELAY_GOAL = 1.5  # ours/llhttp in messages/s, 64 B and 1 KiB SENDs (issue #11)


def rounds_of(lines, case, parser, key):
    return {l["round"]: l[key] for l in lines if l["case"] == case and l["parser"] == parser}


def emit(benchmark, metric, anchor_name, ours, anchor, goal, higher, note=None):
    common = sorted(set(ours) & set(anchor))
    if not common:
        return
    bench.rounds_row(benchmark, metric, [ours[r] for r in common], anchor_name,
                     [anchor[r] for r in common], goal, higher, note)


def callgrind_costs(folder):
    """{(case, parser): instructions per message}"""
    samples = {}
    for path in glob.glob(os.path.join(folder, "cg.*")):
        label = total = None
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("desc: Trigger: Client Request: "):
                    label = line[len("desc: Trigger: Client Request: "):].strip()
                elif line.startswith("summary:") or (total is None and line.startswith("totals:")):
                    total = int(line.split()[1])
        if not label or total is None:
            continue
        m = re.fullmatch(r"(.+)/(.+)/(\d+)/(\d+)", label)
        if not m:
            continue
        case, parser, n, messages = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        samples.setdefault((case, parser), []).append((n, total, messages))
    out = {}
    for key, pts in samples.items():
        pts.sort()
        if len(pts) >= 2:
            (n1, i1, msgs), (n2, i2, _) = pts[0], pts[-1]
            out[key] = (i2 - i1) / ((n2 - n1) * msgs)
    return out


def main():
    lines = []
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
    costs = callgrind_costs(sys.argv[2]) if len(sys.argv) > 2 else {}

    for case, what in HTTP_CASES.items():
        name = f"parser {case}"
        for anchor in ("llhttp", "http-parser", "picohttpparser"):
            emit(name, "requests/s", anchor,
                 rounds_of(lines, case, "ours", "requests_per_s"),
                 rounds_of(lines, case, anchor, "requests_per_s"),
                 PICO_GOAL if anchor == "picohttpparser" else GOAL, True)
            if anchor == "llhttp":  # vs http-parser the MB/s ratio is the requests/s one
                emit(name, "MB/s", anchor,
                     rounds_of(lines, case, "ours", "mb_per_s"),
                     rounds_of(lines, case, anchor, "mb_per_s"), GOAL, True)
        for anchor in ("llhttp", "http-parser", "picohttpparser"):
            o, a = costs.get((case, "ours")), costs.get((case, anchor))
            if o is not None and a is not None:
                row = {
                    "benchmark": name, "metric": "instructions/request", "ours": round(o),
                    "anchor_name": anchor, "anchor": round(a), "ratio": float(f"{o / a:.4g}"),
                    "goal": None if anchor == "picohttpparser" else float(f"{1 / GOAL:.3g}"),
                    "higher_is_better": False,
                }
                if case == "seed-post" and anchor == "llhttp":
                    row["note"] = ("callgrind instruction counts, (I(N2)-I(N1))/(N2-N1) requests: "
                                   "setup and harness excluded; goal = 1/1.5")
                print(json.dumps(row), flush=True)

    for case, size in RELAY_CASES.items():
        name = f"parser {case}"
        note = None
        if size == 64:
            note = ("relay::decoder on streams of SEND messages (each body copied into the "
                    "recycled message's string) vs llhttp on HTTP POSTs with the same bodies "
                    "(64 B, 1 KiB, 64 KiB), each body copied into a reused buffer; goal on "
                    "messages/s for 64 B and 1 KiB")
        emit(name, "MB/s", "llhttp",
             rounds_of(lines, case, "ours", "mb_per_s"),
             rounds_of(lines, case, "llhttp", "mb_per_s"), None, True, note)
        emit(name, "messages/s", "llhttp",
             rounds_of(lines, case, "ours", "requests_per_s"),
             rounds_of(lines, case, "llhttp", "requests_per_s"),
             RELAY_GOAL if size <= 1024 else None, True)
        o, a = costs.get((case, "ours")), costs.get((case, "llhttp"))
        if o is not None and a is not None:
            print(json.dumps({
                "benchmark": name, "metric": "instructions/message", "ours": round(o),
                "anchor_name": "llhttp", "anchor": round(a), "ratio": float(f"{o / a:.4g}"),
                "goal": None, "higher_is_better": False}), flush=True)


if __name__ == "__main__":
    main()
