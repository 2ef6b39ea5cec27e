#!/usr/bin/python3
"""The transfer suite (issue 10, item 8): goodput of one large download.

Contenders, the same file, the same path, the same receiving work (write to
a file on tmpfs, SHA-256 over it, fsync):
  ours    imrelayd --files DIR and imrelay `/get` (protocol 4: UDP, CUBIC,
          SACK, TLP; the client writes NAME.part, hashes, renames)
  tcp     tcp_file serve (sendfile) and tcp_file get: plain kernel TCP
  kcptun  kcptun-server / kcptun-client in their default configuration
          (mode fast, aes, FEC 10/3) carrying the tcp_file stream
Paths:
  loopback  127.0.0.1 in the root namespace (64 KiB MTU, GSO/GRO)
  veth      two namespaces joined by a veth pair, MTU 1500
            (tests/support/lossy_link.py): clean, with the kernel's
            offloads (TCP segments of 64 KiB cross the veth whole); and 1 %
            random loss each way (nftables) on wire-sized packets (the
            offloads cut down to single 1500-byte packets, so that a drop is
            one packet's); and, for reference, 1 % of the offloaded
            super-packets dropped (ours and tcp only)
Server side pinned to BENCH_SERVER_CPU, client side to BENCH_LOAD_CPU.
Rounds alternate the order of the contenders; a row's ratio is the median
of the per-round ratios. CPU seconds per GiB of each side come from
/proc/PID/stat (utime + stime) of the long-running processes and from
wait4() of the per-download ones.

Rows on stdout (JSON lines), progress on stderr.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "bench" / "lib"))
import bench  # noqa: E402
import lossy_link  # noqa: E402

BIN = Path(os.environ.get("BENCH_BIN", ROOT / "build-bench" / "bin"))
TMP = Path(os.environ.get("BENCH_TMP", "/tmp"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
BUDGET = int(os.environ.get("BENCH_BUDGET", "480"))
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
CLIENT_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
STARTED = time.monotonic()
PIN = ('echo "${BENCH_NICE:--20}" >/proc/self/autogroup 2>/dev/null || true; '
       'exec taskset -c "$0" "$@"')
MiB = 1 << 20
GiB = 1 << 30
REF = "veth 1% loss of offloaded packets"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} transfer] {msg}", file=sys.stderr, flush=True)


def time_left():
    return BUDGET - (time.monotonic() - STARTED)


class Side:
    """Where a process runs: a namespace of the link (or the root one) and a core."""

    def __init__(self, link, name, cpu):
        self.link, self.name, self.cpu = link, name, cpu

    def command(self, args):
        # As bench/lib/common.sh's bench_pinned: a session, so an autogroup,
        # of its own at BENCH_NICE, then the core. Every step execs: the pid
        # stays the program's (its CPU time is read from /proc).
        args = ["setsid", "bash", "-c", PIN, str(self.cpu), *map(str, args)]
        return self.link.command(self.name, args) if self.link else args


class Daemon:
    """A long-running process; its output goes to a log file, whose lines
    can be waited for."""

    def __init__(self, side, name, args, stdin=None):
        self.log_path = TMP / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(side.command(args), stdin=stdin, stdout=subprocess.PIPE
                                  if stdin else self.log, stderr=self.log, text=True)
        self.lines = []
        self.cond = threading.Condition()
        if stdin:
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_stdout(self, pattern, start, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise RuntimeError(f"no {pattern!r} within {timeout} s: {self.lines[-5:]}")
                self.cond.wait(min(left, 0.2))

    def wait_log(self, pattern, timeout=30):
        return bench.wait_log(self.log_path, pattern, self.p, timeout)[0]

    def cpu(self):
        return bench.cpu_seconds(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.log.close()


def run_timed(side, args, timeout):
    """Runs a per-download process; (stdout, CPU seconds) from wait4."""
    p = subprocess.Popen(side.command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        out = p.stdout.read()
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
    except BaseException:
        p.kill()
        p.wait()
        raise
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {p.returncode}: {err.strip()[-300:]}")
    return out, usage.ru_utime + usage.ru_stime


class Ours:
    name = "ours"

    def __init__(self, server, client, host, served, out, size, sha):
        self.out, self.size, self.sha = out, size, sha
        self.srv = Daemon(server, "imrelayd", [BIN / "imrelayd", "--host", host, "--port", 0,
                                               "--files", served])
        port = self.srv.wait_log(r"listening on \S+:(\d+)").group(1)
        self.cli = Daemon(client, "imrelay", [BIN / "imrelay", "bench", host, "--port", port,
                                              "--no-presence"], stdin=subprocess.PIPE)
        self.cli.wait_stdout(r"^connected as", 0, 60)
        # The server hashes the file on its first DOWNLOAD and keeps the hash:
        # start one, cancel it, so that no timed round pays for the hash.
        start = len(self.cli.lines)
        self.send("/get big.bin " + str(out))
        m = self.cli.wait_stdout(r"^download (\d+) big\.bin", start, 300)
        self.send("/cancel " + m.group(1))
        self.cli.wait_stdout(r"^! download of big\.bin failed", start, 60)
        clean(out)

    def send(self, line):
        self.cli.p.stdin.write(line + "\n")
        self.cli.p.stdin.flush()

    def once(self, timeout):
        start = len(self.cli.lines)
        s0, c0, t0 = self.srv.cpu(), self.cli.cpu(), time.monotonic()
        self.send("/get big.bin " + str(self.out))
        m = self.cli.wait_stdout(r"^(downloaded big\.bin: (\d+) bytes, sha256 ([0-9a-f]+)|! .*)", start,
                                 timeout)
        t1 = time.monotonic()
        if not m.group(2) or int(m.group(2)) != self.size or m.group(3) != self.sha:
            raise RuntimeError(f"ours: {m.group(0)}")
        r = {"seconds": t1 - t0, "server_cpu": self.srv.cpu() - s0, "client_cpu": self.cli.cpu() - c0}
        clean(self.out)
        return r

    def stop(self):
        if self.cli.p.poll() is None:
            try:
                self.send("/quit")
                self.cli.p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.cli.stop()
        self.srv.stop()


class Tcp:
    name = "tcp"

    def __init__(self, server, client, host, served, out, size, sha):
        self.client, self.host, self.out, self.size, self.sha = client, host, out, size, sha
        self.srv = Daemon(server, "tcp_file", [BIN / "tcp_file", "serve", "--host", host, "--port", 0,
                                               "--file", served / "big.bin"])
        self.port = self.srv.wait_log(r"listening on \S+:(\d+)").group(1)
        self.extra = []  # other server-side daemons (kcptun-server)
        self.client_daemons = []

    def target(self):
        return self.host, self.port

    def once(self, timeout):
        host, port = self.target()
        daemons_s = [self.srv, *self.extra]
        s0 = sum(d.cpu() for d in daemons_s)
        c0 = sum(d.cpu() for d in self.client_daemons)
        t0 = time.monotonic()
        text, cpu = run_timed(self.client, [BIN / "tcp_file", "get", "--host", host, "--port", port,
                                            "--out", self.out / "big.bin", "--size", self.size], timeout)
        t1 = time.monotonic()
        got = json.loads(text)
        if got["bytes"] != self.size or got["sha256"] != self.sha:
            raise RuntimeError(f"{self.name}: {got}")
        r = {"seconds": t1 - t0, "server_cpu": sum(d.cpu() for d in daemons_s) - s0,
             "client_cpu": cpu + sum(d.cpu() for d in self.client_daemons) - c0}
        clean(self.out)
        return r

    def stop(self):
        for d in (*self.client_daemons, *self.extra, self.srv):
            d.stop()


class Kcptun(Tcp):
    name = "kcptun"

    def __init__(self, server, client, host, served, out, size, sha, udp_port, local_port):
        super().__init__(server, client, host, served, out, size, sha)
        self.extra.append(Daemon(server, "kcptun-server", [
            "kcptun-server", "--listen", f"{host}:{udp_port}", "--target", f"{host}:{self.port}",
            "--quiet"]))
        self.client_daemons.append(Daemon(client, "kcptun-client", [
            "kcptun-client", "--remoteaddr", f"{host}:{udp_port}", "--localaddr",
            f"127.0.0.1:{local_port}", "--quiet"]))
        self.local_port = local_port
        # No test connection: it would start a transfer of its own.
        self.client_daemons[0].wait_log(r"listening on: ")
        self.extra[0].wait_log(r"listening on: ")

    def target(self):
        return "127.0.0.1", self.local_port


def clean(d):
    for p in Path(d).iterdir():
        p.unlink()


def make_file(path, size):
    # Random bytes: nothing compresses (kcptun compresses by default).
    with open(path, "wb") as f:
        left = size
        block = os.urandom(16 * MiB)
        n = 0
        while left > 0:
            piece = block if n % 4 else os.urandom(16 * MiB)
            f.write(piece[: min(left, len(piece))])
            left -= len(piece)
            n += 1
    h = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return h.stdout.split()[0]


def scratch_download(path, mib, tag):
    """What the A/B and profile scripts need before a download, set up as the
    suite does: a scratch directory, a served file of `mib` MiB (and its
    SHA-256), an output directory in /dev/shm, and the link `path` names
    (loopback, veth, veth1). Returns (tmp, served, out, size, sha, link)."""
    tmp = Path(os.environ.get("BENCH_TMP", "/tmp")) / f"{tag}-{os.getpid()}"
    tmp.mkdir(parents=True)
    served, out = tmp / "served", Path(f"/dev/shm/{tag}-{os.getpid()}")
    served.mkdir()
    out.mkdir()
    size = mib * MiB
    sha = make_file(served / "big.bin", size)
    link = None
    if path != "loopback":
        # The clean veth keeps its offloads, the lossy one cuts them to
        # wire-sized packets.
        link = lossy_link.LossyLink(1 if path == "veth1" else 0, wire_packets=path == "veth1").up()
    return tmp, served, out, size, sha, link


def measure(path_name, link, size, served, out, sha, rounds, results, kcptun=True):
    server = Side(link, "a", SERVER_CPU)
    client = Side(link, "b", CLIENT_CPU)
    host = link.addr("a") if link else "127.0.0.1"
    contenders = []
    try:
        contenders.append(Ours(server, client, host, served, out, size, sha))
        contenders.append(Tcp(server, client, host, served, out, size, sha))
        if kcptun:
            contenders.append(Kcptun(server, client, host, served, out, size, sha, bench.free_port(),
                                     bench.free_port()))
        if link:
            link.dropped()  # the counters start with the set-up; reported per path below
        for r in range(rounds):
            for c in bench.alternate(r, contenders):
                # Generous bound: a tenth of the rate of a slow link.
                got = c.once(timeout=max(120, size / (2 * MiB)))
                got.update(path=path_name, contender=c.name, round=r, size=size)
                results.append(got)
                log(f"{path_name} round {r + 1}/{rounds} {c.name}: {size / MiB / got['seconds']:.1f} MiB/s, "
                    f"CPU s/GiB server {got['server_cpu'] * GiB / size:.2f} client "
                    f"{got['client_cpu'] * GiB / size:.2f}")
            if time_left() < 60 and r + 1 < rounds:
                log(f"budget nearly spent: {path_name} stops after {r + 1} rounds")
                break
        if link:
            log(f"{path_name}: the link dropped {link.dropped()} packets")
    finally:
        for c in contenders:
            c.stop()


def rows(results):
    goals = {"loopback": 0.8, "veth 0% loss": 0.8, "veth 1% loss": 1.0}
    notes = {
        "veth 0% loss": "veth with the kernel's offloads (TSO/GSO super-packets cross it whole)",
        "veth 1% loss": "1 % of the packets dropped each way on wire-sized (1500-byte) packets: "
                        "the veth cuts every offloaded super-packet first, which costs kernel "
                        "TCP about 8x its clean goodput here",
        REF: "reference: the veth keeps its offloads and nftables drops 1 % of what crosses "
             "it, i.e. of ours's 1,472-byte datagrams (the path MTU) and of TCP's up-to-64 KiB segments "
             "(fewer, larger losses for TCP)",
    }
    for path in dict.fromkeys(r["path"] for r in results):
        by_round = {}
        for r in results:
            if r["path"] == path:
                by_round.setdefault(r["round"], {})[r["contender"]] = r
        rounds = [v for v in by_round.values() if "ours" in v and "tcp" in v]
        if not rounds:
            continue
        size = rounds[0]["ours"]["size"]
        label = f"{size // MiB} MiB" if size < GiB else f"{size // GiB} GiB"

        def rate(x):
            return x["size"] / MiB / x["seconds"]

        def row(anchor, metric, value, goal, higher, note):
            bench.rounds_row(f"transfer {label} download, {path}", metric,
                             [value(v["ours"]) for v in rounds], anchor,
                             [value(v[anchor]) for v in rounds], goal, higher, note)

        common = ("receiver writes to tmpfs, SHA-256, fsync (ours: NAME.part then rename); "
                  "server side on core %s, client side on core %s" % (SERVER_CPU, CLIENT_CPU))
        path_note = notes.get(path, "")
        row("tcp", "goodput MiB/s", rate, goals.get(path), True,
            f"plain TCP (sendfile -> read), same file and path; {common}"
            + (f"; {path_note}" if path_note else ""))
        anchors = ["tcp"]
        if all("kcptun" in v for v in rounds):
            anchors.append("kcptun")
            row("kcptun", "goodput MiB/s", rate, 2.0, True,
                "kcptun-server/-client defaults (mode fast, aes, FEC 10/3) carrying the TCP stream")
        for side in ("server", "client"):
            for anchor in anchors:
                row(anchor, f"{side} CPU s/GiB", lambda x, s=side: x[f"{s}_cpu"] * GiB / x["size"],
                    None, False,
                    f"user+system CPU of the {side} side per GiB"
                    + (" (kcptun: tcp_file + kcptun-" + side + ")" if anchor == "kcptun" else ""))


def main():
    # run.sh's timeout and ^C: leave through the finally blocks, which stop
    # every process and tear the link down.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    for exe in ("imrelayd", "imrelay", "tcp_file"):
        if not (BIN / exe).exists():
            log(f"missing {BIN / exe} (build bench/ first)")
            return 1
    for exe in ("kcptun-server", "kcptun-client"):
        if shutil.which(exe) is None:
            log(f"missing {exe} (Debian package kcptun)")
            return 1
    reason = lossy_link.unavailable_reason()
    if reason:
        log(f"the veth paths are skipped: {reason}")
    # kcptun moves about 13 MiB/s here (CPU-bound, ~15 CPU s/GiB each side):
    # 1 GiB would cost it 80 s a round; the rates of all three are flat past
    # a few hundred MiB. BENCH_TRANSFER_MIB=1024 for the 1 GiB.
    big = int(os.environ.get("BENCH_TRANSFER_MIB", "64" if QUICK else "256")) * MiB
    lossy_size = big
    rounds = 1 if QUICK else min(ROUNDS, 3)
    served = TMP / "served"
    served.mkdir(exist_ok=True)
    out = Path(f"/dev/shm/bench-transfer-{os.getpid()}")
    out.mkdir()
    results = []
    try:
        plan = [("loopback", 0, big, False), ("veth 0% loss", 0, big, False),
                ("veth 1% loss", 1, lossy_size, True), (REF, 1, lossy_size, False)]
        current = None
        for path, loss, size, wire in plan:
            if path != "loopback" and reason:
                continue
            if current != size:
                log(f"making a {size // MiB} MiB file")
                for p in served.iterdir():
                    p.unlink()
                sha = make_file(served / "big.bin", size)
                current = size
            if path == "loopback":
                measure(path, None, size, served, out, sha, rounds, results)
            else:
                with lossy_link.LossyLink(loss, wire_packets=wire) as link:
                    measure(path, link, size, served, out, sha, rounds, results,
                            kcptun=path != REF)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        (TMP / "results.json").write_text(json.dumps(results))
        rows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
