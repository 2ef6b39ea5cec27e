#!/usr/bin/python3
"""Numbers and rows for the benchmark suites (used through bench/lib/common.sh).

    bench.py median N...
    bench.py row KEY=VALUE...       one result row on stdout
    bench.py rounds KEY=VALUE...    a row from per-round numbers (ours_rounds=..., anchor_rounds=...)
    bench.py undecided <ROWS        exit 0 if a row's spread (ratio_min-ratio_max) crosses its
                                    goal and its rounds (ratios) do not decide it (sign test)
    bench.py machine                the machine description run.sh adds to rows
    bench.py tag KEY=VALUE... <ROWS  copies row lines from stdin, adding the keys (run.sh
                                    adds "suite" and "load_average_at_start")
    bench.py finish ROWS OUT        rows (JSON lines) -> OUT (a JSON list with machine and
                                    date) and the markdown table on stdout

Row keys: benchmark, metric, ours, anchor_name, anchor, ratio, goal,
higher_is_better, note (optional), rounds, ratios (the per-round ratios,
from 2 rounds on), ratio_min and ratio_max (their spread). ratio is always
ours/anchor, the median of the per-round ratios; goal is met when ratio >=
goal for higher_is_better rows and ratio <= goal otherwise.

Imported by the Python parts of the suites (sys.path gets bench/lib) for the
code they share: rows from per-round numbers (rounds_row, ratio_row),
alternating order (alternate), starting a server pinned to a core and waiting
for its port (pinned, free_port, wait_port, wait_log, listening_ports) and
the CPU time of a process (cpu_seconds).
"""

import datetime
import json
import math
import os
import platform
import re
import resource
import socket
import statistics
import sys
import time

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


# ------------------------------------------------------------------ spread
# A row's ratio is the median of per-round ratios; their spread (min-max)
# says how far one run can move it. Where the spread crosses the goal, "met"
# can flip between runs: the suites then add rounds, up to BENCH_ROUNDS_MAX,
# until the rounds decide the goal (sign test, below), and the row says so.

def base_rounds():
    return int(os.environ.get("BENCH_ROUNDS", "5"))


def max_rounds():
    """The cap on rounds added while a row's spread crosses its goal
    (BENCH_ROUNDS_MAX, default twice BENCH_ROUNDS)."""
    return max(base_rounds(), int(os.environ.get("BENCH_ROUNDS_MAX", str(2 * base_rounds()))))


def crosses(ratios, goal):
    """True when the goal lies strictly between the lowest and the highest
    per-round ratio: one run may meet it and the next not."""
    ratios = [x for x in ratios if x is not None]
    return goal is not None and len(ratios) >= 2 and min(ratios) < goal < max(ratios)


def sign_test(ratios, goal):
    """(k, n, p): k of the n rounds not equal to the goal fall on its
    majority side; p is the chance of at least k of n on one given side if
    each round were a coin toss (one-sided sign test)."""
    above = sum(1 for x in ratios if x is not None and x > goal)
    below = sum(1 for x in ratios if x is not None and x < goal)
    n, k = above + below, max(above, below)
    return k, n, sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def undecided(ratios, goal):
    """The spread crosses the goal and the rounds do not decide which side
    the median belongs to: fewer rounds on the majority side than a coin
    would give with a chance under 5 % (5 of 5, 6 of 6, 7 of 7, 7 of 8, 8 of 9, 9 of 10)."""
    return crosses(ratios, goal) and sign_test(ratios, goal)[2] >= 0.05


def more_rounds(done, rows):
    """Whether a suite that has run `done` rounds should run another: below
    the cap and some row undecided. rows: (ratios, goal) pairs, ratios in
    round order."""
    return done < max_rounds() and any(undecided(ratios, goal) for ratios, goal in rows)


def spread_note(ratios, goal):
    """What the rounds of a row say about its goal ("" when nothing to say)."""
    base, n = base_rounds(), len(ratios)
    parts = []
    if n > base:
        if any(undecided(ratios[:k], goal) for k in range(base, n)):
            parts.append(f"rounds raised from {base} to {n} (cap {max_rounds()}): its spread crossed "
                         f"the goal and the rounds had not decided it")
        else:
            parts.append(f"{n} rounds, not {base}: another row of the suite was undecided")
    if crosses(ratios, goal):
        k, m, p = sign_test(ratios, goal)
        side = "above" if sum(x > goal for x in ratios) >= sum(x < goal for x in ratios) else "below"
        verdict = "decided" if p < 0.05 else "undecided: met or not depends on the run"
        parts.append(f"the spread {min(ratios):.3g}-{max(ratios):.3g} crosses the goal; {k} of {m} "
                     f"rounds {side} it (sign test p = {p:.2g}): {verdict}")
    return "; ".join(parts)


def ratio_row(benchmark, metric, ours, anchor_name, anchor, ratios, goal, higher=True,
              note=None, rounds=None):
    """Prints and returns one row: ours and anchor are the medians, ratios the
    per-round ratios ours/anchor (the row's ratio is their median)."""
    ratios = [x for x in ratios if x is not None]
    kv = {"benchmark": benchmark, "metric": metric, "anchor_name": anchor_name or "",
          "goal": "" if goal is None else str(goal), "higher_is_better": str(bool(higher))}
    note = "; ".join(n for n in (note, spread_note(ratios, goal)) if n)
    if note:
        kv["note"] = note
    if rounds is not None:
        kv["rounds"] = str(rounds)
    row = make_row(kv, ours, anchor, median(ratios))
    if len(ratios) >= 2:
        row["ratio_min"] = rounded(min(ratios))
        row["ratio_max"] = rounded(max(ratios))
        row["ratios"] = [rounded(x) for x in ratios]
    print(json.dumps(row), flush=True)
    return row


def rounds_row(benchmark, metric, ours, anchor_name, anchor, goal, higher=True, note=None):
    """A row from per-round numbers of both sides (lists, one entry a round;
    None where a round has no number): medians of each side and the median of
    the per-round ratios."""
    pairs = [(o, a) for o, a in zip(ours, anchor) if o is not None and a]
    return ratio_row(benchmark, metric, median([o for o in ours if o is not None]), anchor_name,
                     median([a for a in anchor if a is not None]), [o / a for o, a in pairs],
                     goal, higher, note, rounds=len(pairs))


def saturation_row(benchmark, goal, sides, generator, notes=(), extra_notes=()):
    """The row of a saturation run (requests/s, higher is better) of two
    servers, ours first: `sides` maps each server's name to its rounds, a list
    of dicts with "rate" (requests/s), "proc" (the share of one core the
    server used), "server_core" and "load_core" (how busy each core was with
    everything on it) and optionally "gen" (the load generator's share of its
    core). When a server used under 85 % of its core while the generator's
    core was full, the generator set the pace: the row then compares rates at
    a full core (rate / proc) and says so. `notes` lead the row's note,
    `extra_notes` follow the CPU notes."""
    (ours_name, ours), (anchor_name, anchor) = sides.items()
    out = list(notes)
    for name, runs in sides.items():
        proc = median([r["proc"] for r in runs])
        srv = median([r["server_core"] for r in runs])
        load = median([r["load_core"] for r in runs])
        if proc >= 0.85:
            continue
        whys = []
        if load >= 0.9:
            whys.append(f"the load generator's core was full ({generator} may have set the pace)")
        if srv >= 0.9:
            whys.append("the server's core was also busy with work not counted to the server "
                        "(other processes, interrupts)")
        why = "; ".join(whys) or "neither core was full (latency-bound)"
        gen = median([r["gen"] for r in runs if r.get("gen") is not None])
        own = "" if gen is None else f", {generator} {gen:.0%} of its own"
        out.append(f"{name} used {proc:.0%} of its core{own} (server core {srv:.0%}, load core "
                   f"{load:.0%} busy): {why}")
    out += [n for n in extra_notes if n]

    def full_core(runs):  # requests per second of server CPU: robust to other work on the machine
        return [r["rate"] / max(1e-9, r["proc"]) for r in runs]
    eo, ea = full_core(ours), full_core(anchor)
    out.append(f"per second of server CPU: {ours_name} {median(eo):,.0f}, {anchor_name} "
               f"{median(ea):,.0f} requests (ratio {median([o / a for o, a in zip(eo, ea)]):.3g})")
    bound = any(median([r["proc"] for r in runs]) < 0.85 and median([r["load_core"] for r in runs]) >= 0.9
                for runs in sides.values())
    o = [r["rate"] for r in ours]
    a = [r["rate"] for r in anchor]
    if not bound:
        return rounds_row(benchmark, "requests/s", o, anchor_name, a, goal, True, "; ".join(out))
    out.insert(len(notes), f"{generator} could not load a server fully, so the row compares maximum "
               "rates estimated as requests/s / share of its core the server used; measured: "
               f"{ours_name} {median(o):,.0f}/s, {anchor_name} {median(a):,.0f}/s (ratio "
               f"{median([x / y for x, y in zip(o, a)]):.3g})")
    return rounds_row(benchmark, "requests/s at a full core (estimated)", eo, anchor_name, ea, goal,
                      True, "; ".join(out))


def load_rounds(path, *sides):
    """The per-round records a suite appended to `path` (JSON lines with
    "round" and "server"), as a list of {server: record}, one for each round
    in which every one of `sides` has a record."""
    by = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                by.setdefault(r["round"], {})[r["server"]] = r
    return [by[k] for k in sorted(by) if all(s in by[k] for s in sides)]


def alternate(round_index, contenders):
    """The order of the contenders in a round: as given in even rounds,
    reversed in odd ones (slow drift of the machine then cancels in the
    median of per-round ratios)."""
    contenders = list(contenders)
    return contenders if round_index % 2 == 0 else contenders[::-1]


# ----------------------------------------------------------------- processes

def pinned(cpu, nice=None, nofile=None):
    """A preexec_fn: the child runs in a session, so an autogroup, of its own
    at BENCH_NICE (the scheduler serves it before other work on a shared
    machine), on core `cpu`; nofile raises its descriptor limit (None: to the
    hard limit)."""
    nice = int(os.environ.get("BENCH_NICE", "-20")) if nice is None else nice

    def setup():
        os.setsid()
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        except OSError:
            pass
        os.sched_setaffinity(0, {int(cpu)})
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        n = hard if nofile is None else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    return setup


def free_port(kind="tcp"):
    """A loopback port free right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    """Waits until something accepts TCP on 127.0.0.1:port; raises if `proc`
    exits or the time runs out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("server did not listen on %d" % port)


def wait_log(path, pattern, proc, timeout=30.0, count=1):
    """Waits for `count` matches of the regular expression in the log file at
    `path` that `proc` writes; returns the match objects. Raises with the log's
    tail if `proc` exits or the time runs out."""
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    text = ""
    while True:
        with open(path, errors="replace") as f:
            text = f.read()
        found = list(rx.finditer(text))
        if len(found) >= count:
            return found[:count]
        if proc.poll() is not None or time.monotonic() >= end:
            why = "exited with %s" % proc.returncode if proc.poll() is not None else "timed out"
            raise RuntimeError("%s: no %r (%s): %s" % (os.path.basename(str(path)), pattern, why,
                                                       text[-500:]))
        time.sleep(0.02)


def listening_ports(path, proc, count=1, timeout=30.0):
    """The ports of the first `count` 'listening on HOST:PORT' lines of a
    server of ours (started with --port 0) in its log file."""
    return [int(m.group(1)) for m in wait_log(path, r"listening on \S*:(\d+)\s", proc, timeout, count)]


def cpu_seconds(pid):
    """User+system CPU seconds of a process (all its threads), from
    /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def suite_args(doc, only_env, default_budget=420.0):
    """A Python suite's command line, `suite.py BIN_DIR [BUDGET_SECONDS]`,
    and its phase filter (the comma list in $ONLY_ENV): (bindir, budget,
    wanted), or None after printing the usage."""
    if len(sys.argv) < 2:
        print(doc, file=sys.stderr)
        return None
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else default_budget
    only = set(filter(None, os.environ.get(only_env, "").split(",")))
    return sys.argv[1], budget, lambda phase: not only or phase in only


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
    rounds_row(kv["benchmark"], kv["metric"], [float(x) for x in kv.get("ours_rounds", "").split()],
               kv.get("anchor_name", ""), [float(x) for x in kv.get("anchor_rounds", "").split()],
               number(kv.get("goal", "")),
               kv.get("higher_is_better", "true").lower() in ("1", "true", "yes"), kv.get("note"))


def cmd_undecided():
    """Exit 0 when a row on stdin is undecided (its spread crosses its goal
    and its rounds do not decide it; the row goes to stderr), 1 otherwise."""
    found = False
    for r, _ in json_rows(sys.stdin):
        ratios, goal = r.get("ratios") or [], r.get("goal")
        if undecided(ratios, goal):
            k, n, p = sign_test(ratios, goal)
            print(f"{r['benchmark']} / {r['metric']}: {min(ratios):g}-{max(ratios):g} around the goal "
                  f"{goal:g}, {k} of {n} on one side", file=sys.stderr)
            found = True
    sys.exit(0 if found else 1)


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
    out = ["| benchmark | metric | ours | anchor | ratio | spread | goal | met? |",
           "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        goal = "—" if r.get("goal") is None else ("≥ " if r["higher_is_better"] else "≤ ") + fmt(r["goal"])
        m = met(r)
        mark = "—" if m is None else ("yes" if m else "**no**")
        anchor = f"{fmt(r.get('anchor'))} ({r.get('anchor_name') or '—'})"
        metric = r["metric"] + ("" if r["higher_is_better"] else " (lower is better)")
        note = " ¹" if r.get("note") else ""
        spread = "—"
        if r.get("ratio_min") is not None and r.get("ratio_max") is not None:
            spread = f"{fmt(r['ratio_min'])}–{fmt(r['ratio_max'])}"
            if r.get("goal") is not None and r["ratio_min"] < r["goal"] < r["ratio_max"]:
                spread = f"**{spread}**"  # one run may meet the goal and the next not
        out.append(f"| {r['benchmark']} | {metric} | {fmt(r.get('ours'))} | {anchor} | "
                   f"{fmt(r.get('ratio'))}{note} | {spread} | {goal} | {mark} |")
    notes = [r for r in rows if r.get("note")]
    if notes:
        out.append("")
        out.append("¹ notes:")
        for r in notes:
            out.append(f"- {r['benchmark']} / {r['metric']}: {r['note']}")
    return "\n".join(out)


def json_rows(lines):
    """(row, line) for each JSON object line; other lines are passed over
    (said on stderr when they look like JSON but are not)."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            yield json.loads(line), line
        except json.JSONDecodeError:
            print(f"bench: ignoring a line that is not JSON: {line[:120]}", file=sys.stderr)


def cmd_tag(args):
    extra = parse_kv(args)
    for row, _ in json_rows(sys.stdin):
        row.update(extra)
        print(json.dumps(row, ensure_ascii=False))


def cmd_finish(args):
    rows_path, out_path = args
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    mach = machine()
    rows = []
    with open(rows_path) as f:
        for row, line in json_rows(f):
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
    elif cmd == "undecided":
        cmd_undecided()
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
