#!/usr/bin/python3
"""The relay cluster benchmarks of issue 12 (item 7), run by suite.sh.

    suite.py BIN_DIR [BUDGET_SECONDS]

BIN_DIR holds imrelayd and clusterload (Release). One nats-server with
JetStream (a temporary directory) and three `imrelayd --cluster` nodes with
the default --heartbeat/--node-timeout, all pinned to the server core;
clusterload on the load core. Phases, each alternating ours and its anchor
within every round:

  latency   SEND->SENT round trips, one in flight, 64 B: same node (both
            users on r1) and cross node (sender on r1, receiver on r2),
            against the floor: NATS request/reply between two libnats
            clients through the same nats-server. Clients on the load
            core (as every suite), then everything on the server core.
  cpu       the same three at a fixed rate: CPU of all three nodes (and of
            nats-server, stated apart) per acknowledged message.
  all       SEND ALL to 300 users, 100 on each node, the sender on r1: time
            to SENT ALL and to the last FORWARD; anchor: one imrelayd
            without --cluster holding the same 300 users.
  dead      kill -9 of a node holding 50 users: time until a user on another
            node has LEFT for all 50, and until all 50 names register again
            on another node (goal 5 s).

JSON rows on stdout, progress on stderr. Environment: BENCH_SERVER_CPU (0),
BENCH_LOAD_CPU (1), BENCH_ROUNDS (5), BENCH_QUICK=1 (short runs),
BENCH_NICE (-20: nice value of every started process's autogroup),
CLUSTER_BENCH_ONLY=latency,cpu,all,dead (some phases only),
CLUSTER_BENCH_KEEP=1 (keep the scratch directory with the logs).
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bench  # noqa: E402  (rows with their spread, and rounds added while it crosses a goal)

SERVER_CPU = int(os.environ.get("BENCH_SERVER_CPU", "0"))
LOAD_CPU = int(os.environ.get("BENCH_LOAD_CPU", "1"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
SIZE = 64            # bytes of a message, as the relay suite's latency rows
RATE = 250           # messages/s of the CPU phase (one in flight)
ALL_USERS = 300
DEAD_USERS = 50
GOAL_DEAD_S = 5.0
T0 = time.monotonic()


def log(msg):
    print("[cluster %5.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratios(a, b):
    return [x / y for x, y in zip(a, b) if x is not None and y not in (None, 0)]


class Cluster:
    """nats-server with JetStream and imrelayd nodes, all stopped by close()."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="cluster-bench-")
        self.procs = []
        self.nodes = {}  # name -> (Popen, port, log path)
        self.nats = None
        self.nats_port = None

    def url(self):
        return "nats://127.0.0.1:%d" % self.nats_port

    def start_nats(self):
        self.nats_port = bench.free_port()
        out = open(os.path.join(self.tmp, "nats.log"), "w")
        self.nats = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
             "-sd", os.path.join(self.tmp, "js")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=bench.pinned(SERVER_CPU))
        self.procs.append(self.nats)
        bench.wait_log(os.path.join(self.tmp, "nats.log"), r"Server is ready", self.nats)

    def start_relay(self, name, cluster=True, *flags):
        path = os.path.join(self.tmp, "%s.log" % name)
        out = open(path, "w")
        args = [os.path.join(self.bindir, "imrelayd"), "--host", "127.0.0.1", "--port", "0", *flags]
        if cluster:
            args += ["--cluster", self.url(), "--node", name]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=bench.pinned(SERVER_CPU))
        self.procs.append(proc)
        port = bench.listening_ports(path, proc)[0]
        self.nodes[name] = (proc, port, path)
        return proc, port

    def wait_joined(self, name, others, timeout=30.0):
        """Until every node in `others` logged that `name` joined."""
        for other in others:
            bench.wait_log(self.nodes[other][2], r"node %s joined" % re.escape(name), self.nodes[other][0],
                           timeout)

    def stop(self, proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self):
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (p.args[0], e))
        if os.environ.get("CLUSTER_BENCH_KEEP") == "1":
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Runner:
    def __init__(self, bindir, budget):
        self.bindir = bindir
        self.budget = budget
        self.runs = 0
        self.rows = []

    def load(self, mode, *args, timeout=180, cpu=None):
        self.runs += 1
        argv = [os.path.join(self.bindir, "clusterload"), mode, "--tag", "t%d" % self.runs, "--size", str(SIZE),
                *[str(a) for a in args]]
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=timeout, preexec_fn=bench.pinned(LOAD_CPU if cpu is None else cpu))
        except subprocess.TimeoutExpired:
            log("clusterload timed out: %s" % " ".join(argv[1:]))
            return None
        if out.returncode != 0 or not out.stdout.strip():
            log("clusterload failed (%s): %s" % (out.returncode, out.stderr.strip()[-400:]))
            return None
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if r.get("errors"):
            log("clusterload %s: %d errors" % (mode, r["errors"]))
        return r

    def row(self, benchmark, metric, ours, anchor_name, anchor, ratio_list, goal, higher, note=None):
        ratio_list = [x for x in ratio_list if x is not None]
        self.rows.append(bench.ratio_row(benchmark, metric, ours, anchor_name, anchor, ratio_list, goal,
                                         higher, note, rounds=len(ratio_list)))

    def time_for(self, seconds):
        """Whether another round of about `seconds` fits the budget."""
        return time.monotonic() - T0 + seconds < self.budget


def rotated(kinds, rnd):
    """Who goes first changes every round (slow drift hits each alike)."""
    k = rnd % len(kinds)
    return kinds[k:] + kinds[:k]


def pick(runs, key):
    return [r and r.get(key) for r in runs]


def per_msg_us(r, key):
    if not r or not r["n"]:
        return None
    return r[key] / r["n"] * 1e6


# ------------------------------------------------------------------ phases

def phase_latency(run, c, rounds, count):
    pids = ",".join(str(c.nodes[n][0].pid) for n in ("r1", "r2", "r3"))
    p1, p2 = c.nodes["r1"][1], c.nodes["r2"][1]
    res = {"floor": [], "same": [], "cross": [], "floor_1core": [], "cross_1core": []}
    base = ["--count", count, "--warmup", count // 10, "--nats-pid", c.nats.pid]
    # As every suite: servers (nats-server, the nodes) on the server core,
    # clients (the relay users, the floor's two libnats clients) on the load
    # core; each round trip crosses cores four times in both. Then all on
    # the server core (no wake-up crosses a core, in both), a placement that
    # favours whoever has fewer thread hops.
    runs = {
        "floor": lambda: run.load("nats", "--url", c.url(), *base),
        "same": lambda: run.load("unicast", "--send-port", p1, "--recv-port", p1, "--pids", pids, *base),
        "cross": lambda: run.load("unicast", "--send-port", p1, "--recv-port", p2, "--pids", pids, *base),
        "floor_1core": lambda: run.load("nats", "--url", c.url(), *base, cpu=SERVER_CPU),
        "cross_1core": lambda: run.load("unicast", "--send-port", p1, "--recv-port", p2, "--pids", pids, *base,
                                        cpu=SERVER_CPU),
    }
    rnd, started = 0, time.monotonic()

    def crossing():
        return [(ratios(pick(res["cross"], "p50_us"), pick(res["floor"], "p50_us")), 2.0),
                (ratios(pick(res["cross_1core"], "p50_us"), pick(res["floor_1core"], "p50_us")), 2.0)]

    # More rounds while a goal row's spread crosses its goal (bench/lib), as
    # long as the rest of the suite (~70 s) still fits.
    while rnd < rounds or (bench.more_rounds(rnd, crossing())
                           and run.time_for((time.monotonic() - started) / rnd + 120)):
        for kind in rotated(list(runs), rnd):
            res[kind].append(runs[kind]())
        rnd += 1
        log("latency round %d/%d p50/p99 us: %s" % (rnd, rounds, ", ".join(
            "%s %s/%s" % (k, (v[-1] or {}).get("p50_us"), (v[-1] or {}).get("p99_us")) for k, v in res.items())))
    rounds = rnd
    floor_label = "NATS request/reply through the same nats-server (libnats %s)" % libnats_version()
    note_common = ("one in flight, %d B, %d round trips per run after %d warm-up, %d rounds alternating"
                   % (SIZE, count, count // 10, rounds))
    split = ("nats-server and the 3 nodes on cpu %d, clients (relay users; the floor's requester and "
             "responder) on cpu %d" % (SERVER_CPU, LOAD_CPU))
    for name, kind, floor_kind, goal_p50, what in (
            ("cross_node", "cross", "floor", 2.0, "sender on node r1, receiver on r2; " + split),
            ("same_node", "same", "floor", None, "both users on node r1; " + split),
            ("cross_node_one_core", "cross_1core", "floor_1core", 2.0,
             "sender on node r1, receiver on r2; every process, clients too, on cpu %d" % SERVER_CPU)):
        for metric, goal in (("p50_us", goal_p50), ("p99_us", None)):
            ours = pick(res[kind], metric)
            floor = pick(res[floor_kind], metric)
            run.row("cluster_send_sent_%s_%dB" % (name, SIZE), metric, median(ours),
                    floor_label + (" (all on one core)" if floor_kind == "floor_1core" else ""),
                    median(floor), ratios(ours, floor), goal, False,
                    "SEND->SENT (FORWARD answered RECEIVED by the receiving client), %s; %s; errors %d; "
                    "per-round ratios %s"
                    % (what, note_common, sum(r["errors"] for r in res[kind] if r),
                       "/".join("%.2f" % x for x in ratios(ours, floor))))
    return res


def phase_cpu(run, c, rounds, seconds):
    pids = ",".join(str(c.nodes[n][0].pid) for n in ("r1", "r2", "r3"))
    p1, p2 = c.nodes["r1"][1], c.nodes["r2"][1]
    count = int(RATE * seconds)
    res = {"floor": [], "same": [], "cross": []}
    common = ["--count", count, "--warmup", RATE // 5, "--rate", RATE, "--pids", pids, "--nats-pid", c.nats.pid]
    runs = {
        "same": lambda: run.load("unicast", "--send-port", p1, "--recv-port", p1, *common),
        "cross": lambda: run.load("unicast", "--send-port", p1, "--recv-port", p2, *common),
        "floor": lambda: run.load("nats", "--url", c.url(), *common, cpu=SERVER_CPU),
    }
    rnd, started = 0, time.monotonic()

    def crossing():
        return [(ratios([per_msg_us(r, "cpu_nodes_s") for r in res["cross"]],
                        [per_msg_us(r, "cpu_nodes_s") for r in res["same"]]), 2.0)]

    while rnd < rounds or (bench.more_rounds(rnd, crossing())
                           and run.time_for((time.monotonic() - started) / rnd + 60)):
        for kind in rotated(list(runs), rnd):
            res[kind].append(runs[kind]())
        rnd += 1
        log("cpu round %d/%d, us per message (nodes / nats-server): %s" % (rnd, rounds, ", ".join(
            "%s %.1f/%.1f" % (k, per_msg_us(v[-1], "cpu_nodes_s") or -1, per_msg_us(v[-1], "cpu_nats_s") or -1)
            for k, v in res.items())))
    rounds = rnd
    same = [per_msg_us(r, "cpu_nodes_s") for r in res["same"]]
    cross = [per_msg_us(r, "cpu_nodes_s") for r in res["cross"]]
    nats_cross = [per_msg_us(r, "cpu_nats_s") for r in res["cross"]]
    nats_same = [per_msg_us(r, "cpu_nats_s") for r in res["same"]]
    nats_floor = [per_msg_us(r, "cpu_nats_s") for r in res["floor"]]
    gen_floor = [per_msg_us(r, "cpu_gen_s") for r in res["floor"]]
    achieved = median(pick(res["cross"], "per_s"))
    run.row("cluster_cpu_per_acked_msg_%dB" % SIZE, "node_cpu_us_per_msg", median(cross),
            "the same 3 nodes, same-node SEND", median(same), ratios(cross, same), 2.0, False,
            "sum of the 3 imrelayd nodes' CPU (all threads' run time from /proc/PID/task/*/schedstat, "
            "the nanosecond count behind utime+stime) per SENT, one in flight at %d msg/s offered "
            "(cross achieved %.0f/s), %d messages per run, %d rounds; the nodes' idle work (heartbeats) "
            "is in both; nats-server apart: %.1f us per cross-node message, %.1f per same-node one"
            % (RATE, achieved or 0, count, rounds, median(nats_cross) or -1, median(nats_same) or -1))
    run.row("cluster_nats_server_cpu_per_acked_msg_%dB" % SIZE, "nats_server_cpu_us_per_msg",
            median(nats_cross), "nats-server per NATS request/reply (the floor) at the same rate",
            median(nats_floor), ratios(nats_cross, nats_floor), None, False,
            "nats-server's CPU per cross-node SENT (a request to the receiver's node and its reply: "
            "the same two messages as the floor's request/reply, plus the nodes' heartbeats); the floor's "
            "two libnats clients used %.1f us per request/reply" % (median(gen_floor) or -1))
    return res


def phase_all(run, c, rounds, count):
    ports = ",".join(str(c.nodes[n][1]) for n in ("r1", "r2", "r3"))
    pids = ",".join(str(c.nodes[n][0].pid) for n in ("r1", "r2", "r3"))
    res = {"cluster": [], "single": []}
    def on_cluster():
        res["cluster"].append(run.load("all", "--ports", ports, "--users", ALL_USERS, "--count", count,
                                       "--warmup", max(2, count // 10), "--pids", pids,
                                       "--nats-pid", c.nats.pid))

    def on_single():
        # The anchor: one server without --cluster holding the same users.
        proc, port = c.start_relay("single%d" % len(res["single"]), False)
        res["single"].append(run.load("all", "--ports", port, "--users", ALL_USERS, "--count", count,
                                      "--warmup", max(2, count // 10), "--pids", proc.pid))
        c.stop(proc)

    for rnd in range(rounds):
        for step in rotated([on_cluster, on_single], rnd):
            step()
        log("SEND ALL round %d/%d, SENT ALL p50 us: cluster %s, single %s" % (
            rnd + 1, rounds, (res["cluster"][-1] or {}).get("p50_us"), (res["single"][-1] or {}).get("p50_us")))
    label = "one imrelayd without --cluster, the same %d users" % ALL_USERS
    for metric, key, what in (("sent_all_p50_us", "p50_us", "SEND ALL -> SENT ALL"),
                              ("sent_all_p99_us", "p99_us", "SEND ALL -> SENT ALL"),
                              ("last_forward_p50_us", "last_forward_p50_us", "SEND ALL -> the last FORWARD read"),
                              ("last_forward_p99_us", "last_forward_p99_us", "SEND ALL -> the last FORWARD read")):
        ours, theirs = pick(res["cluster"], key), pick(res["single"], key)
        run.row("cluster_send_all_%d_users_3_nodes" % ALL_USERS, metric, median(ours), label, median(theirs),
                ratios(ours, theirs), None, False,
                "%s; %d receivers, 100 on each node, sender on r1, every receiver answers RECEIVED; one "
                "SEND ALL in flight, %d B, %d per run, %d rounds; errors %d"
                % (what, ALL_USERS, SIZE, count, rounds, sum(r["errors"] for r in res["cluster"] if r)))


class Conn:
    """A blocking relay socket with the framing clusterload uses."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read(self):
        while True:
            end = self.buf.find(b"\n\n")
            if end >= 0:
                head = self.buf[:end]
                m = re.search(rb"(?i)\ncontent-length:\s*(\d+)", head)
                total = end + 2 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    line = head.split(b"\n", 1)[0].decode()
                    self.buf = self.buf[total:]
                    return line
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed by the server")
            self.buf += chunk

    def close(self):
        self.s.close()


def register(port, name):
    conns = [Conn(port), Conn(port)]
    conns[0].send(b"REGISTER TOSEND %s\n\n" % name.encode())
    conns[1].send(b"REGISTER TORECV %s\n\n" % name.encode())
    for c in conns:
        line = c.read()
        if not line.startswith("REGISTERED "):
            raise RuntimeError("REGISTER %s: %s" % (name, line))
    return conns


def dead_round(c, rnd, deadline_s=30.0):
    """One kill -9: returns (left_s, free_s, error102_s)."""
    a_port, b_port = c.nodes["r1"][1], c.nodes["r2"][1]
    name = "d%d" % rnd
    proc, d_port = c.start_relay(name)
    c.wait_joined(name, ("r1", "r2", "r3"))
    users = ["k%dn%d" % (rnd, i) for i in range(DEAD_USERS)]
    watcher = register(a_port, "k%dw" % rnd)
    watcher[0].send(b"SUBSCRIBE PRESENCE\n\n")
    if watcher[0].read() != "SUBSCRIBED PRESENCE":
        raise RuntimeError("SUBSCRIBE PRESENCE refused")
    held = [register(d_port, u) for u in users]
    joined, left = set(), {}
    end = time.monotonic() + deadline_s
    while len(joined) < len(users):
        watcher[1].s.settimeout(max(0.1, end - time.monotonic()))
        line = watcher[1].read()
        if line.startswith("JOINED "):
            joined.add(line[7:])
    prober = register(a_port, "k%dp" % rnd)
    claimers = {u: Conn(b_port) for u in users}

    def watch():
        while len(left) < len(users) and time.monotonic() < end:
            try:
                watcher[1].s.settimeout(max(0.1, end - time.monotonic()))
                line = watcher[1].read()
            except (OSError, RuntimeError):
                return
            if line.startswith("LEFT ") and line[5:] in claimers:
                left.setdefault(line[5:], time.monotonic())
    probe = {}

    def send_probe():
        # A SEND to a user of the dead node: ERROR 102, how soon (in a
        # thread: it may wait up to the receiver timeout).
        try:
            prober[0].send(b"SEND %s\nContent-length: 2\n\nhi" % users[0].encode())
            probe["answer"] = prober[0].read()
            probe["t"] = time.monotonic()
        except (OSError, RuntimeError) as e:
            probe["answer"] = str(e)

    t_kill = time.monotonic()
    proc.kill()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    prober_thread = threading.Thread(target=send_probe, daemon=True)
    prober_thread.start()
    # Every name claimed again on r2, retried in passes until all are ours.
    pending, freed = set(users), {}
    while pending and time.monotonic() < end:
        for u in pending:
            claimers[u].send(b"REGISTER TOSEND %s\n\n" % u.encode())
        for u in list(pending):
            line = claimers[u].read()
            if line.startswith("REGISTERED"):
                freed[u] = time.monotonic()
                pending.discard(u)
            elif not line.startswith("ERROR 104"):
                raise RuntimeError("REGISTER %s on r2: %s" % (u, line))
        if pending:
            time.sleep(0.02)
    thread.join(max(0.1, end - time.monotonic()))
    prober_thread.join(max(0.1, end - time.monotonic()))
    t_102 = probe["t"] - t_kill if probe.get("answer", "").startswith("ERROR 102") else None
    proc.wait()
    for conn in [*watcher, *prober, *claimers.values(), *[x for pair in held for x in pair]]:
        conn.close()
    left_s = max(left.values()) - t_kill if len(left) == len(users) else None
    free_s = max(freed.values()) - t_kill if not pending else None
    first_left = min(left.values()) - t_kill if left else None
    return left_s, free_s, t_102, first_left


def phase_dead(run, c, rounds):
    res = []
    for rnd in range(rounds):
        try:
            res.append(dead_round(c, rnd))
        except Exception as e:
            log("dead-node round %d failed: %s" % (rnd + 1, e))
            res.append((None, None, None, None))
        log("dead node round %d/%d: LEFT for all %d after %s s (first %s s), names free after %s s, "
            "ERROR 102 after %s s" % (rnd + 1, rounds, DEAD_USERS, fmt(res[-1][0]), fmt(res[-1][3]),
                                      fmt(res[-1][1]), fmt(res[-1][2])))
    label = "the goal, %.0f s" % GOAL_DEAD_S
    for i, metric, what in ((0, "left_s", "until a user on another node has LEFT for all %d users"),
                            (1, "names_free_s", "until all %d names register again on another node")):
        vals = [r[i] for r in res]
        ok = [v for v in vals if v is not None]
        run.row("cluster_dead_node_kill9", metric, median(vals), label, GOAL_DEAD_S,
                [v / GOAL_DEAD_S for v in ok], 1.0, False,
                ("kill -9 of a node holding %d users, time " + what + "; defaults --heartbeat 1 "
                 "--node-timeout 3 (bound T + H = 4 s plus a KV round trip); %d rounds: %s s; the first LEFT "
                 "after %s s; a SEND to one of its users, written at the kill, got ERROR 102 after %s s (no "
                 "responders once nats-server has dropped the dead connection; receiver timeout + 1 s when "
                 "the request reached it before)")
                % (DEAD_USERS, DEAD_USERS, rounds, "/".join(fmt(v) for v in vals),
                   fmt(median([r[3] for r in res])), "/".join(fmt(r[2]) for r in res)))


def fmt(v):
    return "-" if v is None else "%.2f" % v


def libnats_version():
    try:
        with open("/usr/include/nats/version.h") as f:
            m = re.search(r'NATS_VERSION_STRING\s+"([^"]+)"', f.read())
            return m.group(1) if m else "?"
    except OSError:
        return "?"


def main():
    args = bench.suite_args(__doc__, "CLUSTER_BENCH_ONLY")
    if args is None:
        return 2
    bindir, budget, wanted = args
    for exe in ("imrelayd", "clusterload"):
        if not os.access(os.path.join(bindir, exe), os.X_OK):
            log("missing %s/%s (needs libnats-dev)" % (bindir, exe))
            return 1
    if not shutil.which("nats-server"):
        log("nats-server is not installed (apt-get install nats-server)")
        return 1
    rounds, count, cpu_s, all_count, dead_rounds = ROUNDS, 2000, 6.0, 100, 3
    if budget < 300:
        rounds, count, cpu_s, all_count = min(rounds, 3), 1000, 4.0, 50
    if QUICK:
        rounds, count, cpu_s, all_count, dead_rounds = 1, 500, 2.0, 20, 1
    log("budget %.0f s: %d rounds; servers on cpu %d, clusterload on cpu %d" % (budget, rounds, SERVER_CPU, LOAD_CPU))
    c = Cluster(bindir)

    def on_signal(signum, _frame):
        c.close()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run = Runner(bindir, budget)
    try:
        c.start_nats()
        for n in ("r1", "r2", "r3"):
            c.start_relay(n)
        for n in ("r1", "r2", "r3"):
            c.wait_joined(n, [o for o in ("r1", "r2", "r3") if o != n])
        log("nats-server and nodes r1 r2 r3 up")
        if wanted("latency"):
            phase_latency(run, c, rounds, count)
        if wanted("cpu"):
            phase_cpu(run, c, rounds, cpu_s)
        if wanted("all"):
            phase_all(run, c, rounds, all_count)
        if wanted("dead"):
            phase_dead(run, c, dead_rounds)
    finally:
        c.close()
    log("done: %d rows, %d clusterload runs, %.0f s" % (len(run.rows), run.runs, time.monotonic() - T0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
