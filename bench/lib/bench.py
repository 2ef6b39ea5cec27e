#!/usr/bin/python3
"""Numbers and rows for the benchmark suites (used through bench/lib/common.sh).

    bench.py median N...
    bench.py row KEY=VALUE...       one result row on stdout
    bench.py rounds KEY=VALUE...    a row from per-round numbers (ours_rounds=..., anchor_rounds=...)
    bench.py machine                the machine description run.sh adds to rows
    bench.py tag KEY=VALUE... <ROWS  copies row lines from stdin, adding the keys (run.sh
                                    adds "suite" and "load_average_at_start")
    bench.py finish ROWS OUT        rows (JSON lines) -> OUT (a JSON list with machine and
                                    date) and the markdown table on stdout

Row keys: benchmark, metric, ours, anchor_name, anchor, ratio, goal,
higher_is_better, note (optional). ratio is always ours/anchor; goal is met
when ratio >= goal for higher_is_better rows and ratio <= goal otherwise.
"""

import datetime
import json
import os
import platform
import statistics
import sys

KEYS = ["benchmark", "metric", "ours", "anchor_name", "anchor", "ratio", "goal",
        "higher_is_better"]


def median(xs):
    return statistics.median(xs) if xs else None


def number(text):
    if text in ("", "null", "None", "nan"):
        return None
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e15 and "." not in text else value


def parse_kv(args):
    out = {}
    for a in args:
        if "=" not in a:
            sys.exit(f"bench.py: expected KEY=VALUE, got {a!r}")
        k, v = a.split("=", 1)
        out[k] = v
    return out


def rounded(x):
    if x is None:
        return None
    if x == 0:
        return 0
    # Four significant digits: enough to compare, short to read.
    return float(f"{x:.4g}")


def make_row(kv, ours, anchor, ratio):
    hib = kv.get("higher_is_better", "true").lower() in ("1", "true", "yes")
    row = {
        "benchmark": kv["benchmark"],
        "metric": kv["metric"],
        "ours": rounded(ours),
        "anchor_name": kv.get("anchor_name", ""),
        "anchor": rounded(anchor),
        "ratio": rounded(ratio),
        "goal": number(kv.get("goal", "")),
        "higher_is_better": hib,
    }
    for extra in ("note", "rounds"):
        if kv.get(extra):
            row[extra] = kv[extra]
    return row


def cmd_row(args):
    kv = parse_kv(args)
    ours = number(kv.get("ours", ""))
    anchor = number(kv.get("anchor", ""))
    ratio = number(kv.get("ratio", ""))
    if ratio is None and ours is not None and anchor:
        ratio = ours / anchor
    print(json.dumps(make_row(kv, ours, anchor, ratio)), flush=True)


def cmd_rounds(args):
    kv = parse_kv(args)
    ours = [float(x) for x in kv.get("ours_rounds", "").split()]
    anchor = [float(x) for x in kv.get("anchor_rounds", "").split()]
    pairs = [(o, a) for o, a in zip(ours, anchor) if a]
    ratio = median([o / a for o, a in pairs])
    kv.setdefault("rounds", str(len(pairs)))
    print(json.dumps(make_row(kv, median(ours), median(anchor), ratio)), flush=True)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} cores{mem}, Linux {platform.release()}"


def met(row):
    if row.get("ratio") is None or row.get("goal") is None:
        return None
    if row["higher_is_better"]:
        return row["ratio"] >= row["goal"]
    return row["ratio"] <= row["goal"]


def fmt(x):
    if x is None:
        return "—"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    if isinstance(x, int) and abs(x) >= 1000:
        return f"{x:,}"
    return f"{x:g}"


def table(rows):
    out = ["| benchmark | metric | ours | anchor | ratio | goal | met? |",
           "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        goal = "—" if r.get("goal") is None else ("≥ " if r["higher_is_better"] else "≤ ") + fmt(r["goal"])
        m = met(r)
        mark = "—" if m is None else ("yes" if m else "**no**")
        anchor = f"{fmt(r.get('anchor'))} ({r.get('anchor_name') or '—'})"
        metric = r["metric"] + ("" if r["higher_is_better"] else " (lower is better)")
        note = " ¹" if r.get("note") else ""
        out.append(f"| {r['benchmark']} | {metric} | {fmt(r.get('ours'))} | {anchor} | "
                   f"{fmt(r.get('ratio'))}{note} | {goal} | {mark} |")
    notes = [r for r in rows if r.get("note")]
    if notes:
        out.append("")
        out.append("¹ notes:")
        for r in notes:
            out.append(f"- {r['benchmark']} / {r['metric']}: {r['note']}")
    return "\n".join(out)


def cmd_tag(args):
    extra = parse_kv(args)
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            print(f"bench: ignoring a line that is not JSON: {line[:120]}", file=sys.stderr)
            continue
        row.update(extra)
        print(json.dumps(row, ensure_ascii=False))


def cmd_finish(args):
    rows_path, out_path = args
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    mach = machine()
    rows = []
    with open(rows_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                print(f"bench: ignoring a line that is not JSON: {line[:120]}", file=sys.stderr)
                continue
            if not isinstance(row, dict) or any(k not in row for k in KEYS):
                print(f"bench: ignoring a row without {KEYS}: {line[:120]}", file=sys.stderr)
                continue
            row["machine"] = mach
            row["date"] = stamp
            rows.append(row)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, out_path)
    loads = sorted({r["load_average_at_start"] for r in rows if r.get("load_average_at_start")})
    print(f"Machine: {mach}; {stamp}")
    if loads:
        print(f"Load average (1 min) before the run: {', '.join(loads)}")
    print()
    print(table(rows))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "median":
        print(f"{median([float(a) for a in args]):g}")
    elif cmd == "row":
        cmd_row(args)
    elif cmd == "rounds":
        cmd_rounds(args)
    elif cmd == "machine":
        print(machine())
    elif cmd == "tag":
        cmd_tag(args)
    elif cmd == "finish":
        cmd_finish(args)
    elif cmd == "table":
        with open(args[0]) as f:
            print(table(json.load(f)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
