"""The servers in-process, spoken to with raw sockets and the seeds' bytes."""

import gc
import os
import socket
import subprocess
import sys
import tempfile
import weakref

import pytest

import improto
from conftest import (TIMEOUT, expect, http_exchange, recv_exactly, recv_until_close,
                      thread_count, wait_for)

REGISTER_ALI = (b"POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/*\r\n"
                b"Content-Length: 28\r\n\r\nREGISTER Ali@127.0.0.1:54321")
GET_LIST = b"GET /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed this connection (EOF or reset).

    (Whether a stopped server's port refuses connections is not checked:
    another process on the machine may bind the freed port at once.)"""
    try:
        data = recv_until_close(sock)
    except ConnectionResetError:
        data = b""
    sock.close()
    return data == b""


# --- relay --------------------------------------------------------------------

def relay_user(address, name):
    """Both sockets of a relay user, registered."""
    tx = socket.create_connection(address, timeout=TIMEOUT)
    rx = socket.create_connection(address, timeout=TIMEOUT)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    expect(tx, b"REGISTERED TOSEND %s\n\n" % name)
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    expect(rx, b"REGISTERED TORECV %s\n\n" % name)
    return tx, rx


def test_relay_send_forward_received_sent():
    with improto.RelayServer() as srv:
        assert srv.host == "127.0.0.1" and srv.port > 0 and srv.address == (srv.host, srv.port)
        a_tx, a_rx = relay_user(srv.address, b"alice")
        b_tx, b_rx = relay_user(srv.address, b"bob")
        assert srv.user_count() == 2
        assert srv.connection_count() == 4

        a_tx.sendall(b"SEND bob\nContent-length: 5\n\nhello")
        expect(b_rx, b"FORWARD alice\nContent-length: 5\n\nhello")
        b_rx.sendall(b"RECEIVED alice\n\n")
        expect(a_tx, b"SENT bob\n\n")

        b_tx.sendall(b"SEND ALL\nContent-length: 2\n\nhi")
        expect(a_rx, b"FORWARD bob\nContent-length: 2\n\nhi")
        a_rx.sendall(b"RECEIVED bob\n\n")
        expect(b_tx, b"SENT ALL\n\n")

        a_tx.sendall(b"SEND carol\nContent-length: 1\n\nx")
        expect(a_tx, b"ERROR 102 Unable to send\n\n")
        for s in (a_tx, a_rx, b_tx, b_rx):
            s.close()
        wait_for(lambda: srv.connection_count() == 0, "the relay to see the closes")
        assert srv.user_count() == 0


def test_relay_receiver_timeout_option():
    with improto.RelayServer(receiver_timeout=0.2) as srv:
        a_tx, a_rx = relay_user(srv.address, b"alice")
        b_tx, b_rx = relay_user(srv.address, b"bob")
        a_tx.sendall(b"SEND bob\nContent-length: 2\n\nyo")
        expect(b_rx, b"FORWARD alice\nContent-length: 2\n\nyo")
        # bob never answers: alice hears ERROR 102 once the receiver timeout passes.
        expect(a_tx, b"ERROR 102 Unable to send\n\n")
        for s in (a_tx, a_rx, b_tx, b_rx):
            s.close()


def test_relay_max_body_option():
    with improto.RelayServer(max_body=4) as srv:
        a_tx, a_rx = relay_user(srv.address, b"alice")
        a_tx.sendall(b"SEND ALL\nContent-length: 5\n\nhello")
        assert recv_until_close(a_tx) == b"ERROR 103 Header incomplete\n\n"
        a_rx.close()
        a_tx.close()


def test_stop_closes_connections_and_frees_the_port():
    srv = improto.RelayServer()
    tx, rx = relay_user(srv.address, b"alice")
    srv.stop()
    assert closed_by_server(tx)
    assert closed_by_server(rx)


# --- registry -----------------------------------------------------------------

def test_registry_post_register_then_get(tmp_path):
    with improto.RegistryServer(data_dir=tmp_path, sync="off") as srv:
        assert srv.data_dir == str(tmp_path)
        assert http_exchange(srv.address, GET_LIST)[0] == "HTTP/1.1 400 Bad Request"  # empty list
        assert http_exchange(srv.address, REGISTER_ALI) == ("HTTP/1.1 200 OK", b"")
        assert http_exchange(srv.address, REGISTER_ALI)[0] == "HTTP/1.1 406 Not Acceptable"
        assert http_exchange(srv.address, GET_LIST) == ("HTTP/1.1 200 OK", b"Ali@127.0.0.1:54321,")
        assert srv.user_count() == 1
        wait_for(lambda: srv.pending_writes() == 0, "the commit")
    assert (tmp_path / "registry.sqlite3").exists()
    # The list survives a restart on the same data directory.
    with improto.RegistryServer(data_dir=tmp_path) as srv:
        assert srv.user_count() == 1
        assert http_exchange(srv.address, GET_LIST) == ("HTTP/1.1 200 OK", b"Ali@127.0.0.1:54321,")


def test_registry_commit_on_io(tmp_path):
    # Durable commits on the serving thread: the same answers, kept on disk.
    with improto.RegistryServer(data_dir=tmp_path, commit_on_io=True) as srv:
        assert http_exchange(srv.address, REGISTER_ALI) == ("HTTP/1.1 200 OK", b"")
        assert http_exchange(srv.address, REGISTER_ALI)[0] == "HTTP/1.1 406 Not Acceptable"
    with improto.RegistryServer(data_dir=tmp_path) as srv:
        assert http_exchange(srv.address, GET_LIST) == ("HTTP/1.1 200 OK", b"Ali@127.0.0.1:54321,")


def test_registry_commit_on_io_is_for_sqlite_only():
    with pytest.raises(improto.ConfigError, match="commit_on_io"):
        improto.RegistryServer(store="postgresql://nobody@127.0.0.1:1/none", commit_on_io=True)


def listener_defer_accept(port: int) -> int:
    """TCP_DEFER_ACCEPT of this process's listening socket on `port` (the
    server runs in-process, so its descriptor is one of ours)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.type == socket.SOCK_STREAM and sock.getsockname()[1] == port:
                    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)
            except OSError:
                continue
    raise AssertionError(f"no listening socket on port {port}")


def test_registry_defer_accept_option():
    with improto.RegistryServer() as srv:
        assert listener_defer_accept(srv.port) > 0
    with improto.RegistryServer(defer_accept=0) as srv:
        assert listener_defer_accept(srv.port) == 0
        # Accepted and counted before it says anything.
        with socket.create_connection(srv.address, timeout=TIMEOUT):
            wait_for(lambda: srv.connection_count() == 1, "the silent client accepted")
    with pytest.raises(improto.ConfigError, match="defer_accept"):
        improto.RegistryServer(defer_accept=-1)


def test_registry_limits_options():
    with improto.RegistryServer(max_body=10) as srv:
        status, _ = http_exchange(srv.address, REGISTER_ALI)
        assert status == "HTTP/1.1 413 Content Too Large"


def test_default_data_dir_is_temporary_and_removed():
    srv = improto.RegistryServer()
    directory = srv.data_dir
    assert os.path.isdir(directory)
    assert http_exchange(srv.address, REGISTER_ALI)[0] == "HTTP/1.1 200 OK"
    srv.stop()
    assert not os.path.exists(directory)


def test_log_lines_reach_python():
    lines = []
    with improto.RegistryServer(log=lines.append) as srv:
        wait_for(lambda: lines, "a log line")
        assert lines[0] == f"listening on {srv.host}:{srv.port}"
        assert all(isinstance(line, str) for line in lines)


# --- buddy --------------------------------------------------------------------

def buddy_tcp(srv, line: bytes) -> bytes:
    with socket.create_connection(srv.address, timeout=TIMEOUT) as s:
        s.sendall(line)
        return recv_until_close(s)  # one request per connection: the server closes


def test_buddy_reg_over_tcp_set_get_over_udp():
    with improto.BuddyServer(sync="off") as srv:
        assert srv.udp_port > 0 and srv.udp_address == (srv.host, srv.udp_port)
        assert buddy_tcp(srv, b"REG alice\n") == b"200 OK\n"
        assert buddy_tcp(srv, b"REG alice\n") == b"203 USER EXISTS\n"
        assert buddy_tcp(srv, b"ADD alice bob\n") == b"202 NO SUCH USER\n"
        assert buddy_tcp(srv, b"REG bob\n") == b"200 OK\n"
        assert buddy_tcp(srv, b"ADD alice bob\n") == b"200 OK\n"
        assert srv.user_count() == 2

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            udp.sendto(b"GET alice", srv.udp_address)
            assert udp.recvfrom(65535)[0] == b"bob 101 0.0.0.0 0\n"
            udp.sendto(b"SET bob 100 4000", srv.udp_address)  # no reply
            # Datagrams from one socket are served in order: the GET sees the SET.
            udp.sendto(b"GET alice", srv.udp_address)
            assert udp.recvfrom(65535)[0] == b"bob 100 127.0.0.1 4000\n"
            udp.sendto(b"GET nobody", srv.udp_address)
            assert udp.recvfrom(65535)[0] == b"202 NO SUCH USER\n"


def free_port(kind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_buddy_fixed_ports_and_data_dir(tmp_path):
    with improto.BuddyServer(data_dir=tmp_path) as first:
        assert buddy_tcp(first, b"REG carol\n") == b"200 OK\n"
    assert (tmp_path / "buddy.sqlite3").exists()
    # Given ports are used as given. A port found free may be taken by
    # another process before we bind it: then try other ones.
    for attempt in range(10):
        port, udp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        try:
            again = improto.BuddyServer(port=port, udp_port=udp_port, data_dir=tmp_path)
            break
        except improto.AddressInUseError:
            continue
    with again:
        assert (again.port, again.udp_port) == (port, udp_port)
        assert buddy_tcp(again, b"REG carol\n") == b"203 USER EXISTS\n"


# --- lifecycle ----------------------------------------------------------------

def test_twenty_servers_start_and_stop():
    before = thread_count()
    kinds = [improto.RelayServer, improto.RegistryServer, improto.BuddyServer]
    servers = [kinds[i % 3]() for i in range(20)]
    try:
        assert len({s.port for s in servers}) == 20
        clients = [socket.create_connection(s.address, timeout=TIMEOUT) for s in servers]
        # A registry accepts a silent client only once the kernel stops
        # deferring it (about 1 s, TCP_DEFER_ACCEPT); until then stop() cannot
        # close what it has not accepted. The others accept at once.
        for s in servers:
            wait_for(lambda: s.connection_count() == 1, f"{type(s).__name__} accepting", 10)
    finally:
        for s in servers:
            s.stop()
    for s, c in zip(servers, clients):
        assert not s.running
        assert closed_by_server(c)
    assert thread_count() == before  # every io and commit thread joined


def test_port_in_use(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with improto.RelayServer() as srv:
        for kind in (improto.RelayServer, improto.RegistryServer, improto.BuddyServer):
            with pytest.raises(improto.AddressInUseError) as info:
                kind(port=srv.port)
            assert info.value.errc == "address_in_use"
            assert isinstance(info.value, improto.TransportError)
            assert isinstance(info.value, OSError)
            assert str(srv.port) in str(info.value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        with pytest.raises(improto.AddressInUseError):
            improto.BuddyServer(udp_port=udp.getsockname()[1])
    assert os.listdir(tmp_path) == []  # the temporary data directories were removed


def test_bad_options_raise_config_error(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    bad = [
        (improto.RegistryServer, {"data_dir": a_file}),
        (improto.RegistryServer, {"data_dir": tmp_path / "missing"}),
        (improto.BuddyServer, {"data_dir": tmp_path / "missing"}),
        (improto.RelayServer, {"host": "not-an-address"}),
        (improto.RelayServer, {"port": 70000}),
        (improto.BuddyServer, {"udp_port": -1}),
        (improto.RelayServer, {"receiver_timeout": 0}),
        (improto.RelayServer, {"max_body": 0}),
        (improto.RegistryServer, {"sync": "sometimes"}),
        (improto.RegistryServer, {"max_headers": 10_001}),
        (improto.BuddyServer, {"ttl": float("nan")}),
        (improto.BuddyServer, {"udp_rate": -1}),
    ]
    for kind, options in bad:
        with pytest.raises(improto.ConfigError) as info:
            kind(**options)
        assert info.value.errc == "invalid_config", options
        assert isinstance(info.value, ValueError)
        assert next(iter(options)) in str(info.value), (options, str(info.value))


def test_unusable_store_raises_storage_error(tmp_path):
    (tmp_path / "registry.sqlite3").mkdir()
    with pytest.raises(improto.StorageError) as info:
        improto.RegistryServer(data_dir=tmp_path)
    assert info.value.errc == "storage_error"


def test_stop_twice_and_use_after_stop():
    srv = improto.BuddyServer()
    assert srv.running and "running" in repr(srv)
    srv.stop()
    srv.stop()
    assert not srv.running and "stopped" in repr(srv)
    with pytest.raises(ValueError, match="stopped"):
        srv.user_count()
    with srv:  # entering a stopped server is harmless; leaving stops nothing more
        pass


def test_garbage_collected_without_stop():
    srv = improto.RegistryServer()
    client = socket.create_connection(srv.address, timeout=TIMEOUT)
    # Accepted about 1 s after connecting, silent as it is (TCP_DEFER_ACCEPT).
    wait_for(lambda: srv.connection_count() == 1, "the silent client accepted", 10)
    directory, ref = srv.data_dir, weakref.ref(srv)
    del srv
    gc.collect()
    assert ref() is None
    assert closed_by_server(client)
    assert not os.path.exists(directory)


def test_interpreter_exit_with_servers_running(tmp_path):
    # A script that never stops its servers (one logging into Python) must
    # exit cleanly, and its temporary data directory must go.
    script = (
        "import improto, sys\n"
        "lines = []\n"
        "r = improto.RegistryServer(log=lines.append)\n"
        "b = improto.BuddyServer(log=lambda line: None)\n"
        "x = improto.RelayServer()\n"
        "print(r.data_dir, b.data_dir, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.split()) == 2
    assert os.listdir(tmp_path) == []



def test_stop_and_queries_from_many_threads():
    import threading
    srv = improto.RelayServer()
    client = socket.create_connection(srv.address, timeout=TIMEOUT)
    outcomes = []

    def query():
        try:
            while True:
                srv.user_count()
        except ValueError:
            outcomes.append("stopped")

    threads = [threading.Thread(target=query) for _ in range(4)]
    threads += [threading.Thread(target=srv.stop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
        assert not t.is_alive()
    assert outcomes == ["stopped"] * 4
    assert closed_by_server(client)


def test_log_callback_may_stop_its_own_server():
    import threading
    ready, stopped = threading.Event(), threading.Event()
    holder = {}

    def log(line):
        assert ready.wait(TIMEOUT)
        holder["server"].stop()
        stopped.set()

    srv = improto.RelayServer(log=log)
    client = socket.create_connection(srv.address, timeout=TIMEOUT)
    holder["server"] = srv
    ready.set()
    assert stopped.wait(TIMEOUT)
    assert not srv.running
    assert closed_by_server(client)


def test_failing_log_callback_keeps_the_lines_coming(capsys):
    seen = []

    def log(line):
        seen.append(line)
        if len(seen) == 1:
            raise RuntimeError("callback failed")

    with improto.BuddyServer(log=log) as srv:
        wait_for(lambda: len(seen) >= 3, "three log lines")  # TCP, UDP, then the store
        assert seen[0] == f"listening on {srv.host}:{srv.port}"
    assert "callback failed" in capsys.readouterr().err


def test_stop_timeout_is_checked():
    with improto.RelayServer() as srv:
        with pytest.raises(improto.ConfigError):
            srv.stop(timeout=-1)
        assert srv.running


# --- the tools' newer options -------------------------------------------------

def post(body: bytes) -> bytes:
    return (b"POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
            % len(body)) + body


def test_registry_max_users_and_logout_origin():
    with improto.RegistryServer(max_users=1) as srv:
        status, _ = http_exchange(srv.address, post(b"REGISTER a@127.0.0.1:1"))
        assert status == "HTTP/1.1 200 OK"
        status, body = http_exchange(srv.address, post(b"REGISTER b@127.0.0.1:2"))
        assert status.startswith("HTTP/1.1 503") and b"user limit" in body
        # Only the address that registered the entry may log it out.
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(TIMEOUT)
            s.connect(srv.address)
            s.sendall(post(b"LOGOUT a@127.0.0.1:1"))
            assert recv_exactly(s, 12) == b"HTTP/1.1 403"
        status, _ = http_exchange(srv.address, post(b"LOGOUT a@127.0.0.1:1"))
        assert status == "HTTP/1.1 200 OK"
    with improto.RegistryServer(logout_from_any=True) as srv:
        http_exchange(srv.address, post(b"REGISTER a@127.0.0.1:1"))
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(TIMEOUT)
            s.connect(srv.address)
            s.sendall(post(b"LOGOUT a@127.0.0.1:1"))
            assert recv_exactly(s, 15) == b"HTTP/1.1 200 OK"
    with pytest.raises(improto.ConfigError):
        improto.RegistryServer(max_users=0)


def test_relay_pairing_timeout():
    with improto.RelayServer(pairing_timeout=0.2) as srv:
        rx = socket.create_connection(srv.address, timeout=TIMEOUT)
        rx.sendall(b"REGISTER TORECV bob\n\n")
        expect(rx, b"REGISTERED TORECV bob\n\n")
        # The TOSEND half never comes: the name is dropped and the socket closed.
        expect(rx, b"ERROR 101 No user registered\n\n")
        assert closed_by_server(rx)
    with pytest.raises(improto.ConfigError):
        improto.RelayServer(pairing_timeout=0)
