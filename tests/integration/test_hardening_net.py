"""Transport hardening seen from the wire: half-closed peers still get their
answers, newcomers over --max-connections are told the server is busy, and
running out of descriptors is logged once and recovered from."""

import re
import signal
import socket
import sqlite3
import sys
import time

import pytest

from conftest import Proc, binary, connect
from raw_sockets import wait_until_read_by_peer  # tests/support, on sys.path via conftest

SANITIZER_REPORT = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def recv_all(sock):
    """Everything until the server closes (the socket timeout bounds it). A
    reset after the data (a refused peer whose request arrived after the
    server's last look) ends it too: what came before it is still read."""
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def check_clean_exit(proc):
    code = proc.stop()
    report = [line for line in proc.stderr_lines if any(s in line for s in SANITIZER_REPORT)]
    assert not report, proc.stderr_lines
    assert code == 0, (proc.args, code, proc.stderr_lines[-5:])


@pytest.fixture
def server(start, tmp_path):
    """server(name, *flags) -> (proc, port), checked for a clean exit."""
    procs = []

    def _server(name, *flags):
        if name == "imbuddyd":
            proc = start(name, "--tcp-port", "0", "--udp-port", "0", "--data", tmp_path, *flags)
        elif name == "imregistryd":
            proc = start(name, "--port", "0", "--data", tmp_path, *flags)
        else:
            proc = start(name, "--port", "0", *flags)
        procs.append(proc)
        return proc, proc.listening()[1]

    yield _server
    for proc in procs:
        check_clean_exit(proc)


class held_write_lock:
    """Holds the store's write lock so the server's commit waits for us (its
    busy_timeout is 5 s): the commit then ends after the peer's half-close."""

    def __init__(self, path):
        self.db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        self.db.execute("ROLLBACK")
        self.db.close()


def http_post(body):
    return (b"POST /userlist.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))


# --------------------------------------------------------------- half-close

def test_registry_answers_a_peer_that_half_closed_after_its_requests(server, tmp_path):
    proc, port = server("imregistryd")
    with held_write_lock(tmp_path / "registry.sqlite3"):
        s = connect(port)
        # Pipelined: a write, a read that must wait for it, a second write.
        s.sendall(http_post(b"REGISTER alice@127.0.0.1:4000")
                  + b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  + http_post(b"REGISTER bob@127.0.0.1:4001"))
        s.shutdown(socket.SHUT_WR)
        # Not needed to pass: gives the server time to read the end of
        # stream before the commits can end (the case that lost answers).
        time.sleep(0.3)
    data = recv_all(s)
    s.close()
    answers = re.findall(rb"HTTP/1\.1 (\d+) [^\r]*\r\n", data)
    assert answers == [b"200", b"200", b"200"], data
    assert b"alice@127.0.0.1:4000," in data
    assert data.endswith(b"\r\n\r\n"), data  # the last answer is whole
    g = connect(port)
    g.sendall(b"GET /userlist.txt HTTP/1.0\r\n\r\n")
    listing = recv_all(g)
    assert b"alice@127.0.0.1:4000," in listing and b"bob@127.0.0.1:4001," in listing


def test_registry_stop_answers_a_reading_session_then_exits(start, tmp_path):
    proc = start("imregistryd", "--port", "0", "--data", tmp_path)
    port = proc.listening()[1]
    with held_write_lock(tmp_path / "registry.sqlite3"):
        s = connect(port)
        s.sendall(http_post(b"REGISTER alice@127.0.0.1:4000"))
        # The session has read the request (a stop before that would close
        # the listener with the connection unread: no answer is owed then)
        # and reads on while the write waits for the lock.
        wait_until_read_by_peer(s)
        proc.popen.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 "), data
    check_clean_exit(proc)


def test_buddy_answers_a_peer_that_half_closed_after_reg(server, tmp_path):
    proc, port = server("imbuddyd")
    with held_write_lock(tmp_path / "buddy.sqlite3"):
        s = connect(port)
        s.sendall(b"REG alice\n")
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.3)  # see above
    assert recv_all(s) == b"200 OK\n"
    s.close()
    again = connect(port)
    again.sendall(b"REG alice\n")
    assert recv_all(again) != b"200 OK\n"  # the first one was committed


def relay_register(port, name):
    tx, rx = connect(port), connect(port)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    assert tx.recv(4096) == b"REGISTERED TOSEND %s\n\n" % name
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    assert rx.recv(4096) == b"REGISTERED TORECV %s\n\n" % name
    return tx, rx


def test_relay_sender_that_half_closed_still_gets_sent(server):
    proc, port = server("imrelayd")
    alice_tx, alice_rx = relay_register(port, b"alice")
    bob_tx, bob_rx = relay_register(port, b"bob")
    alice_tx.sendall(b"SEND bob\nContent-length: 2\n\nhi")
    alice_tx.shutdown(socket.SHUT_WR)
    assert bob_rx.recv(4096) == b"FORWARD alice\nContent-length: 2\n\nhi"
    # The answer comes after alice's end of stream.
    bob_rx.sendall(b"RECEIVED alice\n\n")
    assert recv_all(alice_tx) == b"SENT bob\n\n"


# ----------------------------------------------------------- connection limit

REGISTRY_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def registry_get(sock):
    """One GET on a kept connection: its whole answer (by Content-Length), or
    what came before the server closed."""
    sock.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"\r\nContent-Length: (\d+)", head, re.IGNORECASE)
            if m and len(body) >= int(m.group(1)):
                return data
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_registry_over_max_connections_answers_503(server):
    proc, port = server("imregistryd", "--max-connections", "2")
    a, b = connect(port), connect(port)
    for s in (a, b):
        assert registry_get(s).startswith(b"HTTP/1.1 400 "), "served (empty list)"
    c = connect(port)
    assert recv_all(c) == REGISTRY_BUSY
    # A request sent at once gets the same answer, not a reset.
    c2 = connect(port)
    c2.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert recv_all(c2) == REGISTRY_BUSY
    a.close()

    def served():
        d = connect(port)
        answer = registry_get(d)
        if answer == REGISTRY_BUSY:
            return None  # the server has not seen a's close yet
        return answer

    assert wait_for(served, what="a connection served below the limit").startswith(b"HTTP/1.1 400 ")
    assert registry_get(b).startswith(b"HTTP/1.1 400 ")


RELAY_BUSY = b"ERROR 109 Server busy\n\n"


def test_relay_over_max_connections_answers_109(server):
    proc, port = server("imrelayd", "--max-connections", "2")
    tx, rx = relay_register(port, b"alice")
    c = connect(port)
    assert recv_all(c) == RELAY_BUSY
    c2 = connect(port)
    c2.sendall(b"REGISTER TOSEND carol\n\n")
    assert recv_all(c2) == RELAY_BUSY
    rx.close()

    def served():
        d = connect(port)
        d.sendall(b"REGISTER TOSEND carol\n\n")
        answer = d.recv(4096)
        if answer == RELAY_BUSY:
            return None
        return answer

    assert wait_for(served, what="a connection served below the limit") == b"REGISTERED TOSEND carol\n\n"


def test_buddy_over_max_connections_closes_silently(server):
    proc, port = server("imbuddyd", "--max-connections", "1")
    a = connect(port)
    a.sendall(b"REG al")  # held open, mid-request
    # The session is counted once the server has read from it; until then a
    # newcomer may still be served, so probe until one is refused.

    def refused():
        c = connect(port)
        c.sendall(b"REG bob\n")
        return recv_all(c) == b""

    wait_for(refused, what="a refused newcomer")
    a.sendall(b"ice\n")
    assert recv_all(a) == b"200 OK\n"


# ---------------------------------------------------------------- descriptors

def sanitized(path):
    with open(path, "rb") as f:
        image = f.read()
    return b"__asan_init" in image or b"__ubsan_handle" in image


def test_out_of_descriptors_is_logged_once_and_recovered(tmp_path):
    relayd = binary("imrelayd")
    if sanitized(relayd):
        # The sanitizer runtimes need descriptors too (UBSan probes memory
        # through a pipe and then reports a false "invalid vptr"); the plain
        # build runs this test.
        pytest.skip("out of descriptors is not testable under the sanitizers")
    limit = 24
    wrapper = ("import os, resource, sys\n"
               f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))\n"
               "os.execv(sys.argv[1], sys.argv[1:])\n")
    proc = Proc([sys.executable, "-c", wrapper, relayd, "--port", "0"])
    try:
        port = proc.listening()[1]
        clients = [connect(port) for _ in range(2 * limit)]
        proc.wait_line(r"cannot accept connections: Too many open files")
        time.sleep(0.5)  # not needed to pass: lets several accepts fail
        for c in clients:
            c.close()
        m = proc.wait_line(r"accepting connections again \((\d+) attempts? failed meanwhile\)")
        assert int(m.group(1)) >= 1
        tx, rx = relay_register(port, b"alice")  # served again
        lines = [l for l in proc.stderr_lines if "cannot accept connections" in l]
        assert len(lines) == 1, proc.stderr_lines
    finally:
        code = proc.stop()
    assert code == 0, proc.stderr_lines[-5:]
