"""improto.RelayClient (blocking) against the in-process RelayServer and the
real imrelayd, plus its errors against raw socket servers."""

import socket
import threading
import time

import pytest

import improto
from improto import relay

from conftest import TIMEOUT, Tool, wait_for

@pytest.fixture(params=["inproc", "imrelayd"])
def server(request):
    """(host, port) of a relay server: in-process or the real binary."""
    if request.param == "inproc":
        with improto.RelayServer() as srv:
            yield srv.address
    else:
        tool = Tool("imrelayd", "--port", 0)
        try:
            yield tool.listening()
        finally:
            tool.stop()


def client(name, address, **kw):
    return improto.RelayClient(name, address[0], address[1], timeout=TIMEOUT, **kw)


def test_send_receive_and_iterate(server):
    with client("alice", server) as alice, client("bob", server) as bob:
        got = []
        # alice.send() returns only after bob's client answers RECEIVED.
        t = threading.Thread(target=lambda: got.extend(bob.receive(TIMEOUT) for _ in range(3)))
        t.start()
        alice.send("bob", b"hello")
        alice.send("bob", "h\u00e9")
        alice.send("bob", b"\x00\xff" * 1000)
        t.join()
        assert got == [relay.Forward(from_="alice", body=b"hello"),
                       relay.Forward(from_="alice", body="h\u00e9".encode()),
                       relay.Forward(from_="alice", body=b"\x00\xff" * 1000)]
        assert got[0].from_ == "alice" and isinstance(got[0].body, bytes)
        # events(timeout): the iteration ends after `timeout` seconds without one.
        rest = []
        t = threading.Thread(target=lambda: rest.append(bob.receive(TIMEOUT)))
        t.start()
        alice.send_all(b"last")
        t.join()
        assert rest == [relay.Forward(from_="alice", body=b"last")]
        assert list(bob.events(timeout=0.1)) == []  # nothing else came


def test_send_all_with_callbacks(server):
    inbox = {"bob": [], "carol": []}
    cond = threading.Condition()

    def collector(name):
        def on_event(ev):
            with cond:
                inbox[name].append(ev)
                cond.notify_all()
        return on_event

    with client("bob", server, on_event=collector("bob")) as bob, \
            client("carol", server, on_event=collector("carol")), \
            client("alice", server) as alice:
        alice.send_all(b"to everyone")
        # SENT ALL came: both callbacks ran (the reader answers RECEIVED after taking it).
        with cond:
            assert cond.wait_for(lambda: all(inbox.values()), TIMEOUT)
        for name in inbox:
            assert inbox[name] == [relay.Forward(from_="alice", body=b"to everyone")]
        with pytest.raises(improto.Error, match="on_event"):
            bob.receive(0)


def test_undeliverable_is_code_102(server):
    with client("alice", server) as alice:
        with pytest.raises(improto.ProtocolError) as info:
            alice.send("nobody", b"hi")
        assert info.value.code == 102 and isinstance(info.value, improto.RejectedError)
        assert "nobody" in str(info.value) and "ERROR 102" in str(info.value)
        alice.send_all(b"nobody else here")  # SENT ALL at once
        # The client stays usable after an ERROR reply.
        assert alice.list_users() == ["alice"]


def test_lists_and_presence(server):
    with client("alice", server) as alice:
        alice.subscribe_presence()
        assert alice.list_users() == ["alice"]
        with client("bob", server) as bob:
            assert alice.receive(TIMEOUT) == relay.Joined(user="bob")
            assert bob.list_users() == ["alice", "bob"]
        assert alice.receive(TIMEOUT) == relay.Left(user="bob")
        alice.unsubscribe_presence()
        with client("carol", server):
            assert alice.list_users() == ["alice", "carol"]
        assert list(alice.events(timeout=0.2)) == []


def test_names_refused(server):
    with client("alice", server):
        with pytest.raises(improto.NameTakenError) as info:
            client("alice", server).connect()
        assert info.value.code == 104 and info.value.errc == "name_taken"
    with pytest.raises(improto.ProtocolError) as info:
        client("al!ce", server).connect()
    assert info.value.code == 100 and info.value.errc == "invalid_name"
    # The name is free again once its sockets closed.
    wait_for(lambda: _connects("alice", server), "alice free again")


def _connects(name, server):
    try:
        client(name, server).connect().close()
        return True
    except improto.NameTakenError:
        return False


def test_timed_out_request_does_not_shift_replies(server):
    with client("alice", server) as alice, client("bob", server) as bob:
        # bob does not read: alice's SEND waits for the receiver, times out.
        with pytest.raises(improto.TimeoutError) as info:
            alice.send("bob", b"slow", timeout=0.3)
        assert isinstance(info.value, improto.TransportError)
        assert isinstance(info.value, TimeoutError)  # the built-in too
        # The late SENT is dropped; the next call gets its own reply.
        assert bob.receive(TIMEOUT) == relay.Forward(from_="alice", body=b"slow")
        assert alice.list_users() == ["alice", "bob"]


def test_close_wakes_iteration_and_receive(server):
    alice = client("alice", server).connect()
    out = []
    t = threading.Thread(target=lambda: out.append(list(alice.events())))
    t.start()
    alice.close()
    t.join(TIMEOUT)
    assert out == [[]]
    alice.close()  # idempotent
    with pytest.raises(improto.ConnectionClosedError):
        alice.send("bob", b"x")
    assert "closed" in repr(alice)


def test_on_close_reports_server_stop():
    closed = []
    done = threading.Event()
    srv = improto.RelayServer()
    with client("alice", srv.address, on_event=lambda ev: None,
                on_close=lambda why: (closed.append(why), done.set())):
        srv.stop()
        assert done.wait(TIMEOUT)
    assert isinstance(closed[0], improto.ConnectionClosedError)


# ------------------------------------------------------------------ errors

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_names_host_and_port():
    port = free_port()
    with pytest.raises(improto.TransportError) as info:
        improto.RelayClient("alice", "127.0.0.1", port, timeout=TIMEOUT).connect()
    assert info.value.errc == "connection_refused"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert isinstance(info.value, OSError)


def test_bad_arguments():
    with pytest.raises(improto.ConfigError, match="70000"):
        improto.RelayClient("alice", port=70000)
    with pytest.raises(improto.ConfigError):
        improto.RelayClient("alice", port=1, timeout=-1)
    with pytest.raises(improto.TransportError, match="no-such-host.invalid"):
        improto.RelayClient("alice", "no-such-host.invalid", 50000, timeout=TIMEOUT).connect()
    with pytest.raises(improto.Error, match="not connected"):
        improto.RelayClient("alice", port=1).send("bob", b"x")


class RawServer:
    """A listening socket whose connections get `script(conn)` on a thread."""

    def __init__(self, script):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.conns = []
        self.workers = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            worker = threading.Thread(target=self.script, args=(conn,), daemon=True)
            self.workers.append(worker)
            worker.start()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(TIMEOUT)
        # A script may still be blocked in recv(): shutdown wakes it with the
        # end of stream; closing under it would fail its recv() (EBADF).
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for worker in self.workers:
            worker.join(TIMEOUT)
        for c in self.conns:
            c.close()


def read_message(conn):
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = conn.recv(1)
        if not chunk:
            return data
        data += chunk
    return data


def test_silent_server_times_out():
    srv = RawServer(lambda conn: None)  # accepts, never answers
    try:
        start = time.monotonic()
        with pytest.raises(improto.TimeoutError) as info:
            improto.RelayClient("alice", "127.0.0.1", srv.port, timeout=0.5).connect()
        assert time.monotonic() - start < TIMEOUT
        assert f"127.0.0.1:{srv.port}" in str(info.value) and info.value.errc == "timeout"
    finally:
        srv.close()


def test_server_closing_mid_message():
    def half_reply(conn):
        request = read_message(conn)
        role = b"TOSEND" if b"TOSEND" in request else b"TORECV"
        conn.sendall(b"REGISTERED " + role + b" alice\n\n")
        if role == b"TOSEND":
            read_message(conn)                      # LIST USERS
            conn.sendall(b"USERS\nContent-length: 12\n\nali")  # then closes
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    srv = RawServer(half_reply)
    try:
        with improto.RelayClient("alice", "127.0.0.1", srv.port, timeout=TIMEOUT) as alice:
            with pytest.raises(improto.ConnectionClosedError) as info:
                alice.list_users()
            assert "middle of a message" in str(info.value)
            assert f"127.0.0.1:{srv.port}" in str(info.value)
            # The broken socket stays broken.
            with pytest.raises(improto.ConnectionClosedError):
                alice.list_users()
    finally:
        srv.close()


def registered_then(script):
    """A raw relay: REGISTERED for both sockets, then script(conn) on the send socket."""
    def serve(conn):
        request = read_message(conn)
        role = b"TOSEND" if b"TOSEND" in request else b"TORECV"
        conn.sendall(b"REGISTERED " + role + b" alice\n\n")
        if role == b"TOSEND":
            script(conn)
    return serve


def test_lists_are_paged():
    requests = []

    def pages(conn):
        answers = [b"USERS\nMore: yes\nContent-length: 6\n\nalice\n",
                   b"USERS\nContent-length: 4\n\nbob\n",
                   b"FILES\nMore: yes\nContent-length: 12\n\n5 hello.txt\n",
                   b"FILES\nContent-length: 20\n\n1048576 my song.mp3\n"]
        for answer in answers:
            requests.append(read_message(conn))
            conn.sendall(answer)
        read_message(conn)

    srv = RawServer(registered_then(pages))
    try:
        with improto.RelayClient("alice", "127.0.0.1", srv.port, timeout=TIMEOUT) as alice:
            assert alice.list_users() == ["alice", "bob"]
            assert alice.list_files() == [relay.FileEntry(name="hello.txt", size=5),
                                          relay.FileEntry(name="my song.mp3", size=1048576)]
    finally:
        srv.close()
    assert requests == [b"LIST USERS\n\n", b"LIST USERS\nAfter: alice\n\n",
                        b"LIST FILES\n\n", b"LIST FILES\nAfter: hello.txt\n\n"]


def test_garbage_reply_is_a_protocol_error():
    def garbage(conn):
        read_message(conn)
        conn.sendall(b"USERS\nContent-length: x\n\n")

    srv = RawServer(registered_then(garbage))
    try:
        with improto.RelayClient("alice", "127.0.0.1", srv.port, timeout=TIMEOUT) as alice:
            with pytest.raises(improto.ProtocolError):
                alice.list_users()
    finally:
        srv.close()
