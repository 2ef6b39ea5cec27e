#!/usr/bin/python3
"""The storage rows of issue 12 (item 7), run by suite.sh.

    suite.py BIN_DIR

Durable writes per second through the real servers: imregistryd (REGISTER of
a new name, keep-alive connections) and imbuddyd (REG of a new user, one
connection per request, as the protocol has it), each with CLIENTS writers
for SECONDS, on a PostgreSQL store (ours: --store, PostgreSQL 15 with
fsync=on and synchronous_commit=on, a throwaway server on loopback) and on
SQLite (the anchor: --data, synchronous=FULL). Both group-commit. The
server and every PostgreSQL process are pinned to the server core, so both
back ends get the same one core for all of their work; a second row per
server gives the CPU each spends per write (the server plus, for PostgreSQL,
all its processes). A row is the median of per-round ratios, ours and the
anchor alternating in each round. JSON rows on stdout, progress on stderr.

Environment: BENCH_ROUNDS (default 5), BENCH_QUICK=1 (short runs),
BENCH_SERVER_CPU (default 0: the servers are pinned there).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import bench  # noqa: E402
import postgres  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
SECONDS = 1.5 if QUICK else 4.0
CLIENTS = 16
T0 = time.monotonic()


def log(msg):
    print("[store %5.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


class Server:
    def __init__(self, argv, log_path):
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.ports = bench.listening_ports(log_path, self.proc, 2 if "imbuddyd" in argv[0] else 1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def cpu_seconds(pids):
    """utime+stime of these processes (all threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(postmaster):
    """The postmaster and its children (backends, WAL writer, checkpointer ...)."""
    out = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout
    return [postmaster] + [int(p) for p in out.split()]


def pin(pids):
    # Children forked later (a backend per connection) inherit the postmaster's.
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(pid)],
                       stdout=subprocess.DEVNULL, check=False)


def registry_writer(port, prefix, stop, counts, i):
    n = 0
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    while not stop.is_set():
        body = f"REGISTER {prefix}{i}_{n}@127.0.0.1:{1000 + i}".encode()
        s.sendall(b"POST /userlist.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += s.recv(4096)
        buf = rest[length:]
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head)
        n += 1
    s.close()
    counts[i] = n


def buddy_writer(port, prefix, stop, counts, i):
    n = 0
    while not stop.is_set():
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"REG %s%d_%d\n" % (prefix.encode(), i, n))
        answer = b""
        while True:
            chunk = s.recv(64)
            if not chunk:
                break
            answer += chunk
        s.close()
        if answer != b"200 OK\n":
            raise RuntimeError(answer)
        n += 1
    counts[i] = n


def measure(writer, port, prefix, pids):
    """(acknowledged writes/s, server-side CPU seconds per write)"""
    stop = threading.Event()
    counts = [0] * CLIENTS
    threads = [threading.Thread(target=writer, args=(port, prefix, stop, counts, i))
               for i in range(CLIENTS)]
    cpu0 = cpu_seconds(pids())
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pids()) - cpu0
    writes = sum(counts)
    return writes / elapsed, cpu / max(1, writes)


def main():
    bindir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="improto-store-bench-")
    results = {"registry": {"pg": [], "sqlite": []}, "buddy": {"pg": [], "sqlite": []}}
    cpu = {"registry": {"pg": [], "sqlite": []}, "buddy": {"pg": [], "sqlite": []}}
    with postgres.PostgresServer() as pg:
        pin(postgres_pids(pg.proc.pid))
        for r in range(ROUNDS):
            for kind in ("registry", "buddy"):
                for backend in bench.alternate(r, ("pg", "sqlite")):
                    data = os.path.join(tmp, f"{kind}{r}{backend}")
                    os.mkdir(data)
                    if kind == "registry":
                        argv = [os.path.join(bindir, "imregistryd"), "--port", "0", "--data", data,
                                "--max-users", "100000000"]
                    else:
                        argv = [os.path.join(bindir, "imbuddyd"), "--tcp-port", "0",
                                "--udp-port", "0", "--data", data]
                    if backend == "pg":
                        argv += ["--store", pg.create_database(f"{kind}{r}")]
                    server = Server(argv, data + ".log")
                    if backend == "pg":
                        pids = lambda: [server.proc.pid] + postgres_pids(pg.proc.pid)  # noqa: E731
                    else:
                        pids = lambda: [server.proc.pid]  # noqa: E731
                    try:
                        rate, per_write = measure(
                            registry_writer if kind == "registry" else buddy_writer,
                            server.ports[0], f"{kind[0]}{r}", pids)
                    finally:
                        server.stop()
                    results[kind][backend].append(rate)
                    cpu[kind][backend].append(per_write * 1e6)
                    log(f"round {r + 1}: {kind} on {backend}: {rate:.0f} writes/s, "
                        f"{per_write * 1e6:.0f} us server CPU each")
    shutil.rmtree(tmp, ignore_errors=True)
    for kind, what in (("registry", "imregistryd REGISTER (keep-alive)"),
                       ("buddy", "imbuddyd REG (a connection each)")):
        bench.rounds_row(f"store {what}, {CLIENTS} writers, PostgreSQL store", "acknowledged writes/s",
                         results[kind]["pg"], "the same server on SQLite (synchronous=FULL)",
                         results[kind]["sqlite"], None, True,
                         "PostgreSQL 15 on loopback, fsync=on, synchronous_commit=on; both "
                         "group-commit; the server and PostgreSQL pinned to one core")
        bench.rounds_row(f"store {what}, {CLIENTS} writers, PostgreSQL store", "server CPU us/write",
                         cpu[kind]["pg"], "the same server on SQLite (synchronous=FULL)",
                         cpu[kind]["sqlite"], None, False,
                         "CPU (user+system, all threads) per acknowledged write of the server "
                         "and, for PostgreSQL, of every PostgreSQL process, all pinned to one "
                         "core: the cost of a write, steadier than the rate, which waits on fsync")

if __name__ == "__main__":
    main()
