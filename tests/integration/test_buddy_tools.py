"""imbuddy clients driven through pipes against imbuddyd, and the direct
buddy chat checked byte for byte against raw sockets (seed 002)."""

import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import binary, connect


class Server:
    def __init__(self, proc):
        self.proc = proc
        self.tcp = proc.listening(0)[1]
        self.udp = proc.listening(1)[1]


SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

# Every process of a test, checked after it: exit 0 on SIGTERM (or already
# exited), and no sanitizer report.
_started = []


@pytest.fixture(autouse=True)
def clean_exits():
    _started.clear()
    yield
    for proc in _started:
        code = proc.stop()
        report = [line for line in proc.stderr_lines + proc.stdout_lines
                  if any(s in line for s in SANITIZER_REPORT)]
        assert not report, (proc.args, report)
        assert code in (0, 1), (proc.args, code)


@pytest.fixture
def server(start, tmp_path):
    def _start(*flags):
        proc = start("imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", tmp_path, *flags)
        _started.append(proc)
        return Server(proc)
    return _start


class Client:
    """An imbuddy with stdin on a pipe; expect() reads its stdout in order."""

    def __init__(self, proc):
        self.proc = proc
        self.seen = 0
        m = self.expect(r"^chats on 127\.0\.0\.1:(\d+) \(h for help\)$")
        self.chat_port = int(m.group(1))

    def send(self, line):
        self.proc.popen.stdin.write(line.encode() + b"\n")
        self.proc.popen.stdin.flush()

    def expect(self, pattern, timeout=10.0):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        p = self.proc
        with p._cond:
            while True:
                lines = p.stdout_lines
                for i in range(self.seen, len(lines)):
                    m = regex.search(lines[i])
                    if m:
                        self.seen = i + 1
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (p.popen.poll() is not None and self.seen >= len(lines)
                                 and not any(t.is_alive() for t in p._threads)):
                    raise AssertionError(f"no stdout line matching {pattern!r} after line "
                                         f"{self.seen}: {lines!r}")
                p._cond.wait(min(left, 0.1))

    def lines_after(self):
        return self.proc.stdout_lines[self.seen:]

    def close(self, timeout=10):
        self.proc.popen.stdin.close()
        return self.proc.popen.wait(timeout)


@pytest.fixture
def client(start):
    def _client(srv, *flags):
        proc = start("imbuddy", "--tcp-port", srv.tcp, "--udp-port", srv.udp, *flags,
                     stdin=subprocess.PIPE)
        _started.append(proc)
        return Client(proc)
    return _client


def raw_request(port, raw):
    s = connect(port)
    s.sendall(raw)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk


def raw_get(port, user):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"GET " + user, ("127.0.0.1", port))
    try:
        return s.recvfrom(65535)[0]
    finally:
        s.close()


def recv_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"closed after {data!r}")
        data += chunk
    return data


def test_two_clients_register_add_online_show_chat_and_busy(server, client):
    srv = server()
    alice, bob, carol = client(srv), client(srv), client(srv)
    alice.send("r alice")
    alice.expect(r"^registered alice$")
    # The argument may also come on the next line.
    bob.send("r")
    bob.expect(r"^userid to register\?$")
    bob.send("bob")
    bob.expect(r"^registered bob$")
    alice.send("a bob")
    alice.expect(r"^added bob$")
    bob.send("add alice")
    bob.expect(r"^added alice$")
    alice.send("s")
    alice.expect(r"^buddy bob offline$")
    alice.send("o")
    alice.expect(r"^online as alice, chats on port %d$" % alice.chat_port)
    bob.send("o")
    bob.expect(r"^online as bob, chats on port %d$" % bob.chat_port)
    alice.send("s")
    alice.expect(r"^buddy bob online 127\.0\.0\.1 %d$" % bob.chat_port)
    bob.send("show")
    bob.expect(r"^buddy alice online 127\.0\.0\.1 %d$" % alice.chat_port)

    # alice calls bob; lines go both ways.
    alice.send("c bob")
    alice.expect(r"^\* chatting with bob")
    bob.expect(r"^\* alice started a chat")
    alice.send("hello bob")
    bob.expect(r"^alice: hello bob$")
    bob.send("hi alice, how are you?")
    alice.expect(r"^bob: hi alice, how are you\?$")

    # A third caller is refused with BUSY while the chat is on.
    carol.send("r carol")
    carol.expect(r"^registered carol$")
    carol.send("a alice")
    carol.expect(r"^added alice$")
    carol.send("c alice")
    carol.expect(r"^\* chat with alice ended: alice is busy$")
    raw = connect(alice.chat_port)
    assert recv_line(raw) == b"BUSY\n"
    assert raw.recv(10) == b""

    alice.send("q")
    alice.expect(r"^\* chat with bob ended: you ended the chat$")
    bob.expect(r"^\* chat with alice ended: alice ended the chat$")

    # And the other way round.
    bob.send("c alice")
    bob.expect(r"^\* chatting with alice")
    alice.expect(r"^\* bob started a chat")
    bob.send("yo")
    alice.expect(r"^bob: yo$")
    alice.send("back at you")
    bob.expect(r"^alice: back at you$")
    bob.send("q")
    bob.expect(r"^\* chat with alice ended: you ended the chat$")
    alice.expect(r"^\* chat with bob ended: bob ended the chat$")
    assert not any("carol" in line for line in alice.proc.stdout_lines)

    alice.send("f")
    alice.expect(r"^offline$")
    bob.send("s")
    bob.expect(r"^buddy alice offline$")
    bob.send("d alice")
    bob.expect(r"^deleted alice$")
    bob.send("s")
    bob.expect(r"^no buddies$")
    alice.send("x")
    assert alice.proc.popen.wait(10) == 0
    assert bob.close() == 0
    assert carol.close() == 0
    # Leaving went offline.
    assert raw_get(srv.udp, b"carol") == b"alice 101 127.0.0.1 %d\n" % alice.chat_port


def test_chat_bytes_on_the_wire(server, client):
    srv = server()
    for u in [b"alice", b"zed"]:
        assert raw_request(srv.tcp, b"REG %s\n" % u) == b"200 OK\n"
    alice = client(srv, "--user", "alice")
    alice.expect(r"^you are alice$")
    alice.send("a zed")
    alice.expect(r"^added zed$")

    # zed is a raw socket that went online.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)
    status = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    status.sendto(b"SET zed 100 %d" % listener.getsockname()[1], ("127.0.0.1", srv.udp))
    alice.send("c zed")
    alice.expect(r"^\* chatting with zed")
    peer, _ = listener.accept()
    peer.settimeout(5)
    assert recv_line(peer) == b"CHAT alice\n"
    alice.send("hi zed")
    assert recv_line(peer) == b"hi zed\n"
    peer.sendall(b"yo alice\r\nsecond\n")
    alice.expect(r"^zed: yo alice$")
    alice.expect(r"^zed: second$")
    alice.send("q")
    assert recv_line(peer) == b"q\n"
    assert peer.recv(10) == b""
    alice.expect(r"^\* chat with zed ended: you ended the chat$")

    # Incoming from a raw caller; a second caller gets BUSY.
    caller = connect(alice.chat_port)
    caller.sendall(b"CHAT zed\nhello alice\n")
    alice.expect(r"^\* zed started a chat")
    alice.expect(r"^zed: hello alice$")
    second = connect(alice.chat_port)
    assert recv_line(second) == b"BUSY\n"
    assert second.recv(10) == b""
    alice.send("hello zed")
    assert recv_line(caller) == b"hello zed\n"
    caller.sendall(b"q\n")
    alice.expect(r"^\* chat with zed ended: zed ended the chat$")
    assert caller.recv(10) == b""
    # The line is free again.
    third = connect(alice.chat_port)
    third.sendall(b"CHAT zed\n")
    alice.expect(r"^\* zed started a chat")
    third.close()
    alice.expect(r"^\* chat with zed ended: the connection closed$")
    assert alice.close() == 0


def test_online_is_refreshed_before_the_ttl(server, client):
    # TTL 2 s, refresh every 0.3 s: online 5 s later only if refreshed, and
    # only a 1.7 s stall of the client could fail it.
    srv = server("--ttl", "2")
    for u in [b"alice", b"bob"]:
        assert raw_request(srv.tcp, b"REG %s\n" % u) == b"200 OK\n"
    assert raw_request(srv.tcp, b"ADD bob alice\n") == b"200 OK\n"
    alice = client(srv, "--user", "alice", "--refresh", "0.3")
    alice.send("o")
    alice.expect(r"^online as alice")
    time.sleep(5)
    assert raw_get(srv.udp, b"bob") == b"alice 100 127.0.0.1 %d\n" % alice.chat_port
    alice.send("f")
    alice.expect(r"^offline$")
    offline = b"alice 101 127.0.0.1 %d\n" % alice.chat_port
    deadline = time.monotonic() + 20
    while raw_get(srv.udp, b"bob") != offline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw_get(srv.udp, b"bob") == offline


def test_client_errors_are_sentences(server, client):
    srv = server()
    c = client(srv)
    c.send("a bob")
    c.expect(r"^! log in first")
    c.send("r bad!name")
    c.expect(r"^! cannot register bad!name: invalid argument: userid \"bad!name\" is not")
    c.send("r alice")
    c.expect(r"^registered alice$")
    c.send("r alice")
    c.expect(r"^! cannot register alice: name already taken: the server answered '203 USER EXISTS'$")
    c.send("a nobody")
    c.expect(r"^! cannot add nobody: not found: the server answered '202 NO SUCH USER'$")
    c.send("c nobody")
    c.expect(r"^! nobody is not on your buddy list")
    c.send("l ghost")
    c.expect(r"^you are ghost$")
    c.send("s")
    c.expect(r"^! cannot show buddies: not found: the server answered '202 NO SUCH USER'$")
    c.send("zap")
    c.expect(r"^! unknown command 'zap'")
    c.send("q")
    c.expect(r"^\* no chat in progress")
    c.send("h")
    c.expect(r"^  c BUDDY")
    # A command failed: exit status 1 at the end of input.
    assert c.close() == 1


def test_unreachable_server(client):
    # Ports with nothing behind them.
    probe_t, probe_u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe_t.bind(("127.0.0.1", 0))
    probe_u.bind(("127.0.0.1", 0))
    srv = type("Nothing", (), {"tcp": probe_t.getsockname()[1], "udp": probe_u.getsockname()[1]})
    probe_t.close()
    probe_u.close()
    c = client(srv, "--user", "alice")
    started = time.monotonic()
    c.send("r alice")
    c.expect(r"^! cannot register alice: connection refused: .*is the server running\?")
    c.send("s")
    c.expect(r"^! cannot show buddies: connection refused: nothing answers at the buddy server "
             r"at UDP 127\.0\.0\.1:%d \(is the server running\?\)$" % srv.udp)
    assert c.close() == 1
    assert time.monotonic() - started < 10


def test_sigterm_exits_0_and_goes_offline(server, client):
    srv = server()
    for u in [b"alice", b"bob"]:
        assert raw_request(srv.tcp, b"REG %s\n" % u) == b"200 OK\n"
    assert raw_request(srv.tcp, b"ADD bob alice\n") == b"200 OK\n"
    alice = client(srv, "--user", "alice")
    alice.send("o")
    alice.expect(r"^online as alice")
    assert raw_get(srv.udp, b"bob") == b"alice 100 127.0.0.1 %d\n" % alice.chat_port
    assert alice.proc.stop(signal.SIGTERM) == 0
    assert raw_get(srv.udp, b"bob") == b"alice 101 127.0.0.1 %d\n" % alice.chat_port


def run_imbuddy(*args):
    return subprocess.run([binary("imbuddy"), *map(str, args)], capture_output=True, text=True,
                          timeout=10, stdin=subprocess.DEVNULL)


def test_imbuddy_flags():
    r = run_imbuddy("--help")
    assert r.returncode == 0
    for flag in ["--host", "--tcp-port", "--udp-port", "--user", "--chat-host", "--chat-port",
                 "--refresh", "--timeout", "--help"]:
        assert flag in r.stdout, flag
    for cmd in ["r USERID", "l USERID", "a BUDDY", "d BUDDY", "c BUDDY"]:
        assert cmd in r.stdout
    for args, says in [(["--bogus"], "unknown option '--bogus'"),
                       (["--tcp-port", "0"], "--tcp-port"),
                       (["--user", "no way"], "--user"),
                       (["--refresh", "0"], "--refresh"),
                       (["--host", "example.org"], "--host")]:
        r = run_imbuddy(*args)
        assert r.returncode == 2, args
        assert r.stderr.startswith("imbuddy: ") and says in r.stderr, (args, r.stderr)


def test_chat_port_in_use():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    r = run_imbuddy("--chat-host", "127.0.0.1", "--chat-port", busy.getsockname()[1])
    assert r.returncode == 1
    assert r.stderr.strip() == ("imbuddy: cannot accept chats: TCP 127.0.0.1:%d "
                                "is already in use" % busy.getsockname()[1])
