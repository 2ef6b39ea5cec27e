#!/usr/bin/env bash
# The relay as a cluster (docs/cluster.md): builds the tools, starts a
# nats-server with JetStream in a temporary directory and three imrelayd
# nodes on loopback, runs scripted imrelay clients chatting across the nodes,
# then two imbuddyd nodes on one throwaway PostgreSQL sharing statuses on
# NATS (REG/ADD and a SET on one, a GET on the other), prints the
# conversation and the nodes' logs, and stops everything.
source "$(dirname "$0")/lib.sh"

ensure_packages "${BUILD_PACKAGES[@]}" libnats-dev nats-server libpq-dev postgresql postgresql-common
log "build (g++, Release)"
configure_build "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DIMPROTO_BUILD_TESTS=OFF \
  -DIMPROTO_BUILD_PYTHON=OFF -DIMPROTO_WITH_NATS=ON -DIMPROTO_WITH_POSTGRESQL=ON
log "cluster: nats-server (JetStream), relay nodes r1 r2 r3, clients alice@r1 bob@r2 carol@r3"
/usr/bin/python3 - "$ROOT/build-release/tools" "$ROOT" <<'PY'
import os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

tools = sys.argv[1]
sys.path.insert(0, os.path.join(sys.argv[2], "tests", "support"))
from postgres import PostgresServer  # a throwaway server, always stopped

pg = None
work = tempfile.mkdtemp(prefix="improto-cluster-")
procs = []

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Proc:
    def __init__(self, name, args, stdin=subprocess.DEVNULL):
        self.name, self.lines, self.cond = name, [], threading.Condition()
        self.p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self.pump, daemon=True).start()
        procs.append(self)

    def pump(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=20):
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        with self.cond:
            while not any(rx.search(l) for l in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    sys.exit(f"{self.name}: no '{pattern}' in {self.lines}")
                self.cond.wait(min(left, 0.2))

    def say(self, line):
        print(f"  {self.name} types: {line}")
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

try:
    nport = free_port()
    Proc("nats-server", ["nats-server", "-a", "127.0.0.1", "-p", str(nport), "-js", "-sd",
                         os.path.join(work, "js")]).wait_for("Server is ready")
    url = f"nats://127.0.0.1:{nport}"
    nodes = {}
    for n in ("r1", "r2", "r3"):
        node = Proc(n, [f"{tools}/imrelayd", "--port", "0", "--cluster", url, "--node", n])
        node.wait_for(r"listening on")
        nodes[n] = (node, int(re.search(r":(\d+)$", [l for l in node.lines if "listening on" in l][0]).group(1)))
    for n, (node, _) in nodes.items():
        for other in nodes:
            if other != n:
                node.wait_for(rf"node {other} joined")
    clients = {}
    for user, n in (("alice", "r1"), ("bob", "r2"), ("carol", "r3")):
        c = Proc(user, [f"{tools}/imrelay", user, "127.0.0.1", "--port", str(nodes[n][1])],
                 stdin=subprocess.PIPE)
        c.wait_for(r"registered|Registered|as " + user)
        clients[user] = c
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    alice.wait_for(r"carol joined")
    alice.say("/who")
    alice.wait_for(r"carol")
    alice.say("@bob hello bob, alice on node r1 here")
    bob.wait_for(r"alice: hello bob")
    bob.say("@carol hi carol, this is bob on r2")
    carol.wait_for(r"bob: hi carol")
    carol.say("@ALL hello everyone from r3")
    alice.wait_for(r"carol: hello everyone")
    bob.wait_for(r"carol: hello everyone")
    carol.say("@nobody is anyone there?")
    carol.wait_for(r"(?i)error|not delivered|unable")
    for c in clients.values():
        c.say("/quit")
        c.p.wait(10)
    print()
    for c in clients.values():
        print(f"--- {c.name}'s screen")
        for l in c.lines:
            print(f"  {l}")

    print("--- buddy nodes b1, b2: one PostgreSQL database, statuses shared on NATS")
    pg = PostgresServer()
    pg.start()
    buddies = []
    for n in ("b1", "b2"):
        b = Proc(n, [f"{tools}/imbuddyd", "--tcp-port", "0", "--udp-port", "0",
                     "--store", pg.url, "--status", url])
        b.wait_for(r"data ")
        ports = [int(m.group(1)) for m in (re.search(r"listening on \S+:(\d+)$", l) for l in b.lines) if m]
        buddies.append((b, ports[0], ports[1]))

    def tcp(port, line):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(line)
            return s.makefile("rb").read()

    def udp(port, data):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(data, ("127.0.0.1", port))
            return s.recvfrom(65535)[0] if not data.startswith(b"SET") else b""

    for line in (b"REG alice\n", b"REG bob\n", b"ADD alice bob\n"):
        print(f"  b1 <- {line.decode().strip()} -> {tcp(buddies[0][1], line).decode().strip()}")
    (_, _, u1), (_, _, u2) = buddies[0], buddies[1]
    print("  b1 <- SET bob 100 4000")
    udp(u1, b"SET bob 100 4000")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reply = udp(u2, b"GET alice")
        if b" 100 " in reply:
            break
        time.sleep(0.05)
    print("  b2 <- GET alice ->", reply.decode().strip())
finally:
    for p in reversed(procs):
        if p.p.poll() is None:
            p.p.send_signal(signal.SIGTERM)
            try:
                p.p.wait(10)
            except subprocess.TimeoutExpired:
                p.p.kill()
    for p in procs:
        if p.name in ("r1", "r2", "r3", "b1", "b2"):
            print(f"--- node {p.name}'s log")
            for l in p.lines:
                print(f"  {l}")
    if pg is not None:
        pg.close()
    shutil.rmtree(work, ignore_errors=True)
PY
log "cluster demo done"
