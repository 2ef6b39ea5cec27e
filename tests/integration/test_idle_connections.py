"""Thousands of idle connections on one server: they are parked (no
coroutine, decoder, reply queue or timer of their own while silent), every
one of them is still served when it speaks again, a normal client's round
trips are not slowed by them, and the server's memory grows by a bounded
amount per idle connection.

The count here is 2,000 connections per server (the benchmark takes one
server to the descriptor limit, see bench/relay/suite.py, "idle")."""

import resource
import socket
import statistics
import time

import pytest

from conftest import binary, connect, recv_exactly, recv_until
from test_hardening_net import check_clean_exit, sanitized

IDLE = 2000
ROUND_TRIPS = 200


@pytest.fixture(autouse=True)
def descriptors():
    """Room for the idle connections on both ends (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * IDLE + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def timed(fns, count=ROUND_TRIPS):
    """Median seconds of `count` calls of each of fns, the calls taken in
    turn (a, b, a, b, ...) so that the machine's load falls on each alike."""
    times = [[] for _ in fns]
    for _ in range(count):
        for fn, spent in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [statistics.median(spent) for spent in times]


def check_not_slowed(twin, server):
    """A round trip to the server with the idle connections against the same
    round trip to a twin server without them, timed in turn: a ratio under
    the same load, not an absolute figure (the machine is shared, and the
    tests also run under ASan). A server that walked its idle connections
    per request (or woke them) would be slowed by far more than this allows.
    (The quiet figure used to be taken before the idle connections, and a
    burst of load during the second measurement alone could fail it.)"""
    quiet, loaded = timed([twin, server])
    assert loaded <= 3 * quiet + 0.002, (quiet, loaded)


def check_memory(proc, before, connections, bound):
    per_connection = (rss_bytes(proc.popen.pid) - before) / connections
    if sanitized(proc.args[0]):
        return  # the sanitizers' allocator adds its own per-allocation cost
    # 5.4-7.2 KB per connection before connections were parked (coroutine
    # frames, timers, queues); parked on Asio sockets 0.67-1.07 KB (Asio's
    # per-socket state and parked wait); parked in our own epoll set, as
    # plain descriptors, 0.3-0.8 KB (measured at 3,000: registry 516 B,
    # relay 788 B with its user entry, buddy 322 B); then with no output
    # buffer or cached address kept by a parked connection and a smaller
    # relay session, registry 290-310 B, relay 477-483 B (2,000-3,000
    # connections; nginx 524 B in the same run). Each bound leaves room for
    # the allocator's layout and fails for the build before (registry 502,
    # relay 780 B at 2,000); buddy's (silent connections, 307-399 B) fails
    # for the Asio-socket design (643 B).
    assert per_connection < bound, per_connection


GET = b"GET /userlist.txt HTTP/1.1\r\nHost: idle\r\n\r\n"


def read_http_response(sock):
    head = recv_until(sock, b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = recv_exactly(sock, length)
    return head, body


def test_registry_parks_idle_connections(start, tmp_path):
    for d in ("server", "twin"):
        (tmp_path / d).mkdir()
    proc = start("imregistryd", "--port", "0", "--data", tmp_path / "server")
    port = proc.listening()[1]
    twin = start("imregistryd", "--port", "0", "--data", tmp_path / "twin")

    def getter(port):
        client = connect(port)

        def get():
            client.sendall(GET)
            head, _ = read_http_response(client)
            assert head.split(b" ")[0] == b"HTTP/1.1", head
        return client, get

    client, get = getter(port)
    twin_client, twin_get = getter(twin.listening()[1])
    timed([twin_get, get], count=10)  # warm-up
    before = rss_bytes(proc.popen.pid)
    idle = []
    for _ in range(IDLE):
        s = connect(port, timeout=30)
        s.sendall(GET)
        read_http_response(s)
        idle.append(s)
    time.sleep(0.2)  # not needed to pass: lets the last ones park
    check_memory(proc, before, IDLE, 420)
    check_not_slowed(twin_get, get)
    # Every parked connection is woken by its next request, pipelined: two
    # at once, answered in order on the same socket.
    for s in idle:
        s.sendall(GET + GET)
    for s in idle:
        read_http_response(s)
        read_http_response(s)
    for s in idle:
        s.close()
    client.close()
    twin_client.close()
    check_clean_exit(proc)
    check_clean_exit(twin)


def relay_register(port, name):
    tx, rx = connect(port, timeout=30), connect(port, timeout=30)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    assert recv_until(tx) == b"REGISTERED TOSEND %s\n\n" % name
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    assert recv_until(rx) == b"REGISTERED TORECV %s\n\n" % name
    return tx, rx


def relay_message(tx, rx, sender, to, body):
    """tx (sender's sending socket) -> rx (receiver's receiving socket)."""
    tx.sendall(b"SEND %s\nContent-length: %d\n\n%s" % (to, len(body), body))
    expected = b"FORWARD %s\nContent-length: %d\n\n%s" % (sender, len(body), body)
    assert recv_exactly(rx, len(expected)) == expected
    rx.sendall(b"RECEIVED %s\n\n" % sender)
    assert recv_until(tx) == b"SENT %s\n\n" % to


def test_relay_parks_idle_connections(start):
    proc = start("imrelayd", "--port", "0")
    port = proc.listening()[1]
    twin = start("imrelayd", "--port", "0")

    def pinger(port):
        pairs = relay_register(port, b"alice"), relay_register(port, b"bob")
        return pairs, lambda: relay_message(pairs[0][0], pairs[1][1], b"alice", b"bob", b"ping")

    pairs, ping = pinger(port)
    twin_pairs, twin_ping = pinger(twin.listening()[1])
    timed([twin_ping, ping], count=10)  # warm-up
    before = rss_bytes(proc.popen.pid)
    users = [relay_register(port, b"u%d" % i) for i in range(IDLE // 2)]
    time.sleep(0.2)
    check_memory(proc, before, IDLE, 620)
    check_not_slowed(twin_ping, ping)
    # Every parked pair still delivers: u(i) sends to u(i+1), all at once.
    n = len(users)
    for i, (tx, _) in enumerate(users):
        tx.sendall(b"SEND u%d\nContent-length: 2\n\nhi" % ((i + 1) % n))
    for i, (_, rx) in enumerate(users):
        sender = b"u%d" % ((i - 1) % n)
        expected = b"FORWARD %s\nContent-length: 2\n\nhi" % sender
        assert recv_exactly(rx, len(expected)) == expected
        rx.sendall(b"RECEIVED %s\n\n" % sender)
    for i, (tx, _) in enumerate(users):
        assert recv_until(tx) == b"SENT u%d\n\n" % ((i + 1) % n)
    for tx, rx in users + list(pairs) + list(twin_pairs):
        tx.close()
        rx.close()
    check_clean_exit(proc)
    check_clean_exit(twin)


def test_buddy_parks_silent_connections(start, tmp_path):
    for d in ("server", "twin"):
        (tmp_path / d).mkdir()
    proc = start("imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", tmp_path / "server")
    port = proc.listening()[1]
    twin = start("imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", tmp_path / "twin")
    twin_port = twin.listening()[1]

    def one_request(port=port):
        # Answered from memory (201, unknown verb): no store write timed.
        s = connect(port)
        s.sendall(b"HELLO\n")
        assert s.recv(4096).startswith(b"201"), "no answer"
        s.close()

    def twin_request():
        one_request(twin_port)

    timed([twin_request, one_request], count=10)  # warm-up
    before = rss_bytes(proc.popen.pid)
    idle = [connect(port, timeout=30) for _ in range(IDLE)]
    # Connected is not accepted: wait until the server holds them all (its
    # RSS stops growing is not a condition; the count is not exposed, so a
    # request on the last one proves the accept loop has passed them all).
    last = idle[-1]
    last.sendall(b"REG idlelast\n")
    assert last.recv(4096).startswith(b"20")
    idle.pop().close()
    time.sleep(0.2)
    check_memory(proc, before, IDLE - 1, 500)
    check_not_slowed(twin_request, one_request)
    # Every parked connection is woken by its request and answered.
    for i, s in enumerate(idle):
        s.sendall(b"REG idle%d\n" % i)
    for s in idle:
        assert s.recv(4096).startswith(b"20")
        s.close()
    check_clean_exit(proc)
    check_clean_exit(twin)
