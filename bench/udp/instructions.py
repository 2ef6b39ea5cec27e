#!/usr/bin/env python3
"""User-space instructions per datagram, counted by callgrind (noise-free).

  instructions.py parse  UDP_PARSE_COST
  instructions.py server NAME=COMMAND... [--echo UDP_ECHO] [--loop] [--repeat N]

parse: udp_parse_cost under callgrind with two loop counts; the difference
of the totals over the difference of the counts is one parse, the program's
start and end cancel out. For a SET and a GET, each reading.

server: each imbuddyd (NAME=path; several to compare builds) and udp_echo
run under callgrind, set up as the udp suite does (100 users, 5 buddies
each, all ONLINE), then take bursts of 64 SETs or 64 GETs from one socket
(a burst's GET replies are awaited; after a SET burst, until the server's
socket is empty). Each server runs three times, with (N1 SET, N1 GET),
(N2 SET, N1 GET) and (N1 SET, N2 GET) bursts; differences of the totals over
the differences of the counts give one SET and one GET with everything the
server does for it in user space: the transport loop, the parse, the lookup,
the reply. Kernel work (the system calls) is not counted: see the suite's
perf and strace figures for it.

--loop counts only what imbuddyd's UDP coroutine does once resumed
(`udp_socket::serve*` and what it calls: recvmmsg to sendmmsg, the handler,
setting up the next wait), leaving out the scheduler's wake-ups, timers
and TCP: the whole-server count moves by about +-30 instructions run to run
with those, this one by a few, which is what comparing two builds needs.
--repeat N measures every server N times (rows list each run).
"""

import json
import os
import re
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time

import setup_users  # beside this file

BURST = 64
UDP_SEGMENT = 103  # linux/udp.h


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def run_callgrind(args, out, only=None):
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    if only:
        cmd.append(f"--toggle-collect={only}")
    return cmd + args


def parse_costs(binary):
    n1, n2 = 10_000, 60_000
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, datagram in (("SET", "SET u000 100 40000"), ("GET", "GET u000")):
            for mode in ("words", "general", "view", "copy"):
                totals = []
                for n in (n1, n2):
                    out = os.path.join(tmp, f"cg.{mode}.{n}")
                    subprocess.run(run_callgrind([binary, mode, str(n), datagram], out),
                                   check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                    totals.append(callgrind_total(out))
                rows[f"{name} {mode}"] = (totals[1] - totals[0]) / (n2 - n1)
    return rows


class server:
    def __init__(self, cmd, out, echo, only=None):
        self.echo = echo
        self.proc = subprocess.Popen(run_callgrind(cmd, out, only), stderr=subprocess.PIPE,
                                     text=True)
        self.ports = []
        want = 1 if echo else 2
        deadline = time.time() + 120
        while len(self.ports) < want:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited")
            m = re.search(r"listening on \S*:(\d+)", line)
            if m:
                self.ports.append(int(m.group(1)))
        self.udp_port = self.ports[-1]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=120)  # reads its stderr to the end meanwhile
        except subprocess.TimeoutExpired:
            # Seen with udp_echo under valgrind on a loaded machine: the
            # signal did not end its blocking recvmmsg. Its counts are
            # written at exit, so this run is lost: fail it loudly.
            self.proc.kill()
            raise RuntimeError("the server did not stop on SIGTERM")


def rx_queue_and_drops(port):
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}"):
                return int(fields[4].split(":")[1], 16), int(fields[-1])
    raise RuntimeError(f"no UDP socket on port {port}")


def load(port, set_bursts, get_bursts):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(60)
    sets = [f"SET u{i % 100:03d} 100 {40000 + i % 100:05d}".encode() for i in range(BURST)]
    gets = [f"GET u{i % 100:03d}".encode() for i in range(BURST)]
    # Each burst is one send cut into its datagrams by the kernel (UDP GSO):
    # the server finds all 64 in its socket at once, as under saturation.
    for _ in range(set_bursts):
        s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, len(sets[0]))
        s.send(b"".join(sets))
        deadline = time.time() + 60
        while rx_queue_and_drops(port)[0] != 0:
            if time.time() > deadline:
                raise RuntimeError("the server did not empty its socket")
            time.sleep(0.002)
    for _ in range(get_bursts):
        s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, len(gets[0]))
        s.send(b"".join(gets))
        for _ in gets:
            s.recv(65536)
    drops = rx_queue_and_drops(port)[1]
    if drops:
        raise RuntimeError(f"the server's socket dropped {drops} datagrams")
    s.close()


LOOP_ONLY = "improto::net::udp_socket::serve*"


def server_cost(name, cmd, is_echo, only, tmp):
    """One SET and one GET of one server: three runs, differences of totals."""
    n1, n2 = 20, 420  # bursts of 64
    totals = []
    for i, (sb, gb) in enumerate([(n1, n1), (n2, n1), (n1, n2)]):
        data = tempfile.mkdtemp(prefix=f"data.{name}.{i}.", dir=tmp)
        full = cmd if is_echo else cmd + ["--host", "127.0.0.1", "--tcp-port", "0",
                                          "--udp-port", "0", "--data", data,
                                          "--udp-rate", "0"]
        out = os.path.join(data, "cg.out")
        srv = server(full, out, is_echo, None if is_echo else only)
        if not is_echo:
            setup_users.register(srv.ports[0], timeout=60)  # slow under valgrind
        load(srv.udp_port, 1, 1)  # statuses set, every path warm
        load(srv.udp_port, sb, gb)
        srv.stop()
        totals.append(callgrind_total(out))
    dn = (n2 - n1) * BURST
    return (totals[1] - totals[0]) / dn, (totals[2] - totals[0]) / dn


def server_costs(servers, echo, only=None, repeat=1):
    runs = {}
    targets = [(n, c, False) for n, c in servers] + (
        [("udp_echo", [echo, "--port", "0", "--reply-size", "125"], True)] if echo else [])
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):  # the servers in turn, `repeat` times
            for name, cmd, is_echo in targets:
                set_, get = server_cost(name, cmd, is_echo, only, tmp)
                runs.setdefault(name, []).append((set_, get))
                print(f"{name}: {set_:.0f} instructions per SET, {get:.0f} per GET",
                      file=sys.stderr, flush=True)
    rows = {}
    for name, rs in runs.items():
        rows[name] = {"SET": statistics.median(s for s, _ in rs),
                      "GET": statistics.median(g for _, g in rs)}
        if repeat > 1:
            rows[name]["SET runs"] = [round(s, 1) for s, _ in rs]
            rows[name]["GET runs"] = [round(g, 1) for _, g in rs]
    return rows


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "parse":
        for k, v in parse_costs(sys.argv[2]).items():
            print(f"{k}: {v:.1f} instructions per parse")
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        servers, echo, only, repeat = [], None, None, 1
        args = sys.argv[2:]
        while args:
            a = args.pop(0)
            if a == "--echo":
                echo = args.pop(0)
            elif a == "--loop":
                only = LOOP_ONLY
            elif a == "--repeat":
                repeat = int(args.pop(0))
            else:
                name, _, path = a.partition("=")
                servers.append((name, [path]))
        print(json.dumps(server_costs(servers, echo, only, repeat)))
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
