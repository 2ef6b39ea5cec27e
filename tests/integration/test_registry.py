"""imregistryd: protocol 1's registry over HTTP/1.1, driven with the seed 004
client's exact bytes, raw sockets and curl."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import CloseWatch, closed_by_peer, connect, recv_exactly

SEED_HOST = "127.0.0.1"


SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def assert_clean_exit(proc):
    """SIGTERM ends a server with exit 0 and no sanitizer report (when the
    binaries are built with sanitizers)."""
    code = proc.stop()
    report = [line for line in proc.stderr_lines if any(s in line for s in SANITIZER_REPORT)]
    assert not report, proc.stderr_lines
    if code != -signal.SIGKILL:
        assert code == 0, proc.stderr_lines


@pytest.fixture
def registry(start, tmp_path):
    """registry(*flags, data=DIR) -> (proc, port): imregistryd on a free port,
    checked for a clean exit after the test."""
    procs = []

    def _registry(*flags, data=None):
        proc = start("imregistryd", "--port", "0", "--data", data or tmp_path, *flags)
        procs.append(proc)
        return proc, proc.listening()[1]
    yield _registry
    for proc in procs:
        assert_clean_exit(proc)


# ------------------------------------------------------------ seed 004 bytes

def seed_post(body):
    """The seed client's POST, byte for byte (body then a blank line)."""
    lines = [
        "POST %s HTTP/1.1" % ("/" + "userlist.txt"),
        "Host: %s" % SEED_HOST,
        "Content-Type: %s" % "text/*",
        "Content-Length: %s" % len(body),
        "",
        "%s" % body,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def seed_get():
    lines = ["GET %s HTTP/1.1" % ("/" + "userlist.txt"), "Host: %s" % SEED_HOST]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def seed_exchange(port, request):
    """One send(), one recv(2048), close: exactly what the seed client does."""
    s = connect(port)
    s.send(request)
    data = s.recv(2048)
    s.close()
    return data


def seed_users(data):
    """The seed client's updateUsers() parsing of a GET answer."""
    result = data.decode().split("\r\n")
    users = []
    if "200" in result[0]:
        body = result[result.index("") + 1]
        for user in body.split(","):
            if user != "":
                users.append(user)
            else:
                break
    return users


def response_bytes(status, reason, body=b"", extra=b""):
    return b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status, reason, len(body), extra, body)


def read_response(sock):
    """(status, headers dict with lower-case names, body) of one response."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"closed inside a response head: {head!r}")
        head += chunk
    lines = head[:-4].decode().split("\r\n")
    version, status, _ = lines[0].split(" ", 2)
    assert version == "HTTP/1.1"
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = recv_exactly(sock, int(headers["content-length"])) if int(headers["content-length"]) else b""
    return int(status), headers, body


def get_list(port):
    s = connect(port)
    s.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = read_response(s)
    s.close()
    return status, body


# ------------------------------------------------------------------- tests

def test_seed_client_bytes_get_exact_answers(registry):
    proc, port = registry()
    # Empty list: 400, which the seed client prints as "no online users".
    answer = seed_exchange(port, seed_get())
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\nContent-Length: ")
    assert seed_users(answer) == []

    assert seed_exchange(port, seed_post("REGISTER Ali@127.0.0.1:5001")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("REGISTER Veli@127.0.0.1:5002")) == response_bytes(200, b"OK")
    answer = seed_exchange(port, seed_get())
    body = b"Ali@127.0.0.1:5001,Veli@127.0.0.1:5002,"
    assert answer == response_bytes(200, b"OK", body)
    assert seed_users(answer) == ["Ali@127.0.0.1:5001", "Veli@127.0.0.1:5002"]

    taken = seed_exchange(port, seed_post("REGISTER Ali@127.0.0.1:6000"))
    assert taken.startswith(b"HTTP/1.1 406 Not Acceptable\r\nContent-Length: ")
    for bad in ["REGISTER a:b@127.0.0.1:1", "REGISTER a@b@127.0.0.1:1", "REGISTER a b@127.0.0.1:1",
                "REGISTER @127.0.0.1:1", "REGISTER tab\tname@127.0.0.1:1",
                "REGISTER nul\x01@127.0.0.1:1"]:
        answer = seed_exchange(port, seed_post(bad))
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\nContent-Length: "), bad

    # The seed bonus: LOGOUT removes the entry; an unknown entry is 404.
    assert seed_exchange(port, seed_post("LOGOUT Ali@127.0.0.1:5001")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("LOGOUT Ali@127.0.0.1:5001")).startswith(
        b"HTTP/1.1 404 Not Found\r\n")
    # Same name, other address: not that entry.
    assert seed_exchange(port, seed_post("LOGOUT Veli@127.0.0.1:9")).startswith(
        b"HTTP/1.1 404 Not Found\r\n")
    assert seed_users(seed_exchange(port, seed_get())) == ["Veli@127.0.0.1:5002"]
    proc.wait_line(r"^registered Ali@127\.0\.0\.1:5001 \(from 127\.0\.0\.1:\d+\)$")
    proc.wait_line(r"^logged out Ali@127\.0\.0\.1:5001$")
    assert proc.stderr_lines[0].startswith("listening on 127.0.0.1:")


def test_quiet_logs_no_line_per_change(registry):
    proc, port = registry("--quiet")
    assert seed_exchange(port, seed_post("REGISTER Ali@127.0.0.1:5001")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("LOGOUT Ali@127.0.0.1:5001")) == response_bytes(200, b"OK")
    # A refusal is still logged, after the changes: once it is there, the
    # changes' lines would have been too.
    assert seed_exchange(port, b"NOT HTTP\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    proc.wait_line(r": 400 Bad Request .*closing$")
    assert not [line for line in proc.stderr_lines if "registered Ali" in line or "logged out" in line]
    assert proc.stderr_lines[0].startswith("listening on 127.0.0.1:")


def test_seed_listen_mode_registers_its_own_tcp_address(registry):
    _, port = registry()
    s = connect(port)
    ip, cport = s.getsockname()
    s.send(seed_post("REGISTER %s" % ("Lara" + "@" + ip + ":" + str(cport))))
    result = s.recv(2048).decode().split("\r\n")
    assert "200" in result[0]
    s.close()
    assert seed_users(seed_exchange(port, seed_get())) == [f"Lara@{ip}:{cport}"]


def test_http_errors_and_closing(registry):
    _, port = registry()

    def ask(raw, expect_close):
        s = connect(port)
        s.sendall(raw)
        status, headers, body = read_response(s)
        if expect_close:
            assert headers.get("connection") == "close"
            assert closed_by_peer(s, 3)
        else:
            assert "connection" not in headers
            # Still usable afterwards.
            s.sendall(b"GET /userlist.txt HTTP/1.1\r\n\r\n")
            assert read_response(s)[0] == 400
        s.close()
        return status, headers, body

    assert ask(b"GET /nope HTTP/1.1\r\n\r\n", False)[0] == 404
    assert ask(b"GET / HTTP/1.1\r\n\r\n", False)[0] == 404
    status, headers, _ = ask(b"PUT /userlist.txt HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", False)
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    assert ask(b"DELETE /userlist.txt HTTP/1.1\r\n\r\n", False)[0] == 405
    # A body that is neither REGISTER nor LOGOUT, or a bad host/port.
    assert ask(b"POST /userlist.txt HTTP/1.1\r\nContent-Length: 5\r\n\r\nHELLO", False)[0] == 400
    assert ask(b"POST /userlist.txt HTTP/1.1\r\n\r\n", False)[0] == 400
    assert ask(seed_post("REGISTER bob@127.0.0.1:0"), False)[0] == 400
    assert ask(seed_post("REGISTER bob@not a host:5"), False)[0] == 400
    # Framing errors: the server answers and closes.
    assert ask(b"GARBAGE\r\n\r\n", True)[0] == 400
    assert ask(b"GET /userlist.txt HTTP/1.1\r\nno colon here\r\n\r\n", True)[0] == 400
    assert ask(b"POST /userlist.txt HTTP/1.1\r\nContent-Length: x1\r\n\r\n", True)[0] == 400
    assert ask(b"POST /userlist.txt HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", True)[0] == 413
    # The body arrives too: the answer must not be lost to a reset.
    assert ask(b"POST /userlist.txt HTTP/1.1\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000,
               True)[0] == 413
    assert ask(b"GET /userlist.txt HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", True)[0] == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    assert ask(b"GET /userlist.txt HTTP/1.1\r\n" + many + b"\r\n", True)[0] == 431
    assert ask(b"POST /userlist.txt HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True)[0] == 501
    assert ask(b"GET /userlist.txt HTTP/2.0\r\n\r\n", True)[0] == 505


def test_keep_alive_rules(registry):
    _, port = registry()
    s = connect(port)
    for i in range(5):
        s.sendall(seed_post(f"REGISTER u{i}@127.0.0.1:{7000 + i}"))
        assert read_response(s)[0] == 200
        s.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(s)
        assert status == 200 and body.count(b",") == i + 1
    # HEAD: GET's headers, no body.
    s.sendall(b"HEAD /userlist.txt HTTP/1.1\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    # Connection: close is honoured after its answer.
    s.sendall(b"GET /userlist.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
    status, headers, _ = read_response(s)
    assert status == 200 and headers["connection"] == "close"
    assert closed_by_peer(s, 3)

    # HTTP/1.0 closes unless asked to keep the connection, and is told so.
    s = connect(port)
    s.sendall(b"GET /userlist.txt HTTP/1.0\r\n\r\n")
    assert read_response(s)[1]["connection"] == "close"
    assert closed_by_peer(s, 3)
    s = connect(port)
    s.sendall(b"GET /userlist.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert read_response(s)[1]["connection"] == "keep-alive"
    s.sendall(b"GET /userlist.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert read_response(s)[0] == 200


def test_pipelined_requests_answered_in_order_and_see_earlier_writes(registry):
    _, port = registry()
    s = connect(port)
    requests = [
        seed_post("REGISTER a@127.0.0.1:1001"),
        b"GET /userlist.txt HTTP/1.1\r\n\r\n",
        seed_post("REGISTER b@127.0.0.1:1002"),
        seed_post("REGISTER a@127.0.0.1:1003"),
        b"GET /nothing HTTP/1.1\r\n\r\n",
        b"GET /userlist.txt HTTP/1.1\r\n\r\n",
        seed_post("LOGOUT a@127.0.0.1:1001"),
        b"HEAD /userlist.txt HTTP/1.1\r\n\r\n",
        b"GET /userlist.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
    ]
    s.sendall(b"".join(requests))
    got = [read_response(s) for _ in range(6)]
    assert [g[0] for g in got] == [200, 200, 200, 406, 404, 200]
    assert got[1][2] == b"a@127.0.0.1:1001,"
    assert got[5][2] == b"a@127.0.0.1:1001,b@127.0.0.1:1002,"
    assert read_response(s)[0] == 200
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += s.recv(1)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n"
    status, headers, body = read_response(s)
    assert (status, body) == (200, b"b@127.0.0.1:1002,")
    assert closed_by_peer(s, 3)


def test_pipelined_posts_then_half_close_still_answered(registry):
    _, port = registry()
    s = connect(port)
    s.sendall(b"".join(seed_post(f"REGISTER p{i}@127.0.0.1:{2000 + i}") for i in range(20)))
    s.shutdown(socket.SHUT_WR)
    answers = [read_response(s) for _ in range(20)]
    assert all(a[0] == 200 for a in answers)
    assert closed_by_peer(s, 3)
    assert get_list(port)[1].count(b",") == 20


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, timeout=20, text=True)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_get_post_and_connection_reuse(registry):
    proc, port = registry()
    url = f"http://127.0.0.1:{port}/userlist.txt"
    done = curl("-w", "%{http_code}", "--data", "REGISTER bob@127.0.0.1:4000", url)
    assert done.returncode == 0 and done.stdout == "200", done.stderr
    done = curl("-w", " %{http_code}", url)
    assert done.stdout == "bob@127.0.0.1:4000, 200"
    # Two URLs in one invocation: the second reuses the first connection.
    done = curl("-w", " %{http_code} %{num_connects}\n", url, url)
    assert done.stdout.splitlines() == ["bob@127.0.0.1:4000, 200 1", "bob@127.0.0.1:4000, 200 0"]
    # A POST and then a GET on one connection (--next keeps it).
    done = curl("-w", "%{http_code} %{num_connects}\n", "--data", "REGISTER amy@127.0.0.1:4001", url,
                "--next", "-w", " %{http_code} %{num_connects}\n", url)
    assert done.stdout.splitlines() == ["200 1", "bob@127.0.0.1:4000,amy@127.0.0.1:4001, 200 0"]
    done = curl("-w", "%{http_code}", "--data", "REGISTER bob@127.0.0.1:4002", url)
    assert done.stdout.endswith("406")
    done = curl("-w", "%{http_code}", "--data", "LOGOUT bob@127.0.0.1:4000", url)
    assert done.stdout == "200"
    done = curl("-I", url)
    assert done.stdout.startswith("HTTP/1.1 200 OK")


def test_slow_loris_dropped_while_others_are_served(registry):
    proc, port = registry("--message-timeout", "0.5")
    started = time.monotonic()  # before the server can see the connection
    slow = connect(port)
    slow.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: ")
    watch = CloseWatch(slow)  # the drop's time, however long the others take
    # Others are served meanwhile, on new and on kept connections.
    kept = connect(port)
    for i in range(10):
        assert seed_exchange(port, seed_post(f"REGISTER fast{i}@127.0.0.1:{3000 + i}")) == \
            response_bytes(200, b"OK")
        kept.sendall(b"GET /userlist.txt HTTP/1.1\r\n\r\n")
        assert read_response(kept)[0] == 200
    # At the message timeout by the server's clock (never before it); the
    # upper bound leaves a loaded machine room.
    elapsed = watch.wait() - started
    assert 0.4 <= elapsed < 10, elapsed
    assert watch.data == b""
    proc.wait_line(r"^127\.0\.0\.1:\d+: dropped, no complete request within 0\.5 s$")
    # A quiet kept-alive connection is not a slow client: still open.
    kept.sendall(b"GET /userlist.txt HTTP/1.1\r\n\r\n")
    assert read_response(kept)[0] == 200


def test_idle_connections_closed_after_idle_timeout(registry):
    _, port = registry("--idle-timeout", "0.01")  # 0.6 s
    s = connect(port)
    started = time.monotonic()  # the idle time starts after this request
    s.sendall(b"GET /userlist.txt HTTP/1.1\r\n\r\n")
    assert read_response(s)[0] == 400
    assert closed_by_peer(s, 10)
    assert 0.5 <= time.monotonic() - started < 10


def test_connection_limit(registry):
    _, port = registry("--max-connections", "2")
    a, b = connect(port), connect(port)
    for s in (a, b):
        s.sendall(b"GET /userlist.txt HTTP/1.1\r\n\r\n")
        assert read_response(s)[0] == 400
    c = connect(port)
    assert closed_by_peer(c, 10)  # accepted (deferred accept: after ~1 s) and closed
    a.close()
    # A place is free once the server has seen a's close: wait for that.
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = seed_exchange(port, seed_get())
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        if answer.startswith(b"HTTP/1.1 400 ") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer.startswith(b"HTTP/1.1 400 "), answer


def test_concurrent_registrations_survive_kill_9(registry, tmp_path):
    proc, port = registry()
    n = 50
    answers = [None] * n

    def register(i):
        answers[i] = seed_exchange(port, seed_post(f"REGISTER user{i}@127.0.0.1:{10000 + i}"))

    threads = [threading.Thread(target=register, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - started
    assert all(a == response_bytes(200, b"OK") for a in answers), answers
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(10)

    again, port2 = registry()
    again.wait_line(rf"^{n} users registered in ")
    status, body = get_list(port2)
    assert status == 200
    assert sorted(body.decode().rstrip(",").split(",")) == sorted(
        f"user{i}@127.0.0.1:{10000 + i}" for i in range(n))
    print(f"{n} concurrent registrations in {took:.3f} s; all {n} back after kill -9")


def test_durable_across_clean_restart_and_logout(registry, tmp_path):
    proc, port = registry()
    assert seed_exchange(port, seed_post("REGISTER x@127.0.0.1:1")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("REGISTER y@127.0.0.1:2")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("LOGOUT x@127.0.0.1:1")) == response_bytes(200, b"OK")
    assert proc.stop() == 0
    proc.wait_line(r"^stopped$")
    _, port = registry()
    assert get_list(port) == (200, b"y@127.0.0.1:2,")
    assert (tmp_path / "registry.sqlite3").exists()


@pytest.mark.parametrize("mode", [(), ("--commit-on-io",)], ids=["worker", "commit-on-io"])
def test_changes_under_load_survive_kill_9(registry, mode):
    """Keep-alive writers register and log out while the server is killed:
    after the restart the list holds exactly the entries whose last answered
    change was a REGISTER (a change still unanswered at the kill may have
    gone either way). Both commit modes: on the worker, and on the io thread."""
    proc, port = registry(*mode)
    lock = threading.Lock()
    acked = {}         # entry -> registered after its last answered change
    in_flight = set()  # sent, unanswered
    killed = threading.Event()
    errors = []

    def post(entry, verb):
        body = f"{verb} {entry}".encode()
        return b"POST /userlist.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body), body)

    def writer(w):
        try:
            s = connect(port)
            j = 0
            while True:
                entry = f"w{w}n{j}@127.0.0.1:{1000 + j}"
                # Odd entries are logged out again, even ones stay.
                for verb in ("REGISTER", "LOGOUT") if j % 2 else ("REGISTER",):
                    with lock:
                        in_flight.add(entry)
                    s.sendall(post(entry, verb))
                    status, _, body = read_response(s)
                    if status != 200:
                        errors.append(f"{verb} {entry}: {status} {body!r}")
                        return
                    with lock:
                        acked[entry] = verb == "REGISTER"
                        in_flight.discard(entry)
                j += 1
        except (OSError, AssertionError) as e:
            if not killed.is_set():
                errors.append(f"writer {w}: {e!r}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not errors:  # until enough changes are answered
        with lock:
            if len(acked) >= 300:
                break
        time.sleep(0.01)
    killed.set()
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(10)
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert len(acked) >= 300

    _, port2 = registry(*mode)
    status, body = get_list(port2)
    listed = set(body.decode().rstrip(",").split(",")) if status == 200 else set()
    with lock:
        must = {e for e, present in acked.items() if present and e not in in_flight}
        may = must | in_flight
    assert must <= listed, sorted(must - listed)[:10]
    assert listed <= may, sorted(listed - may)[:10]
    print(f"{mode or 'worker'}: {len(acked)} entries answered, {len(in_flight)} in flight at kill -9; "
          f"all answered changes back")


def test_seed_positional_address_and_sigint(start, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    proc = start("imregistryd", f"127.0.0.1:{free}", cwd=tmp_path)
    assert proc.listening() == ("127.0.0.1", free)
    assert seed_exchange(free, seed_get()).startswith(b"HTTP/1.1 400 ")
    assert proc.stop(signal.SIGINT) == 0
    proc.wait_line(r"^shutting down \(SIGINT\)$")
    assert (tmp_path / "registry.sqlite3").exists()  # default data dir: the current one


def run_tool(*args, cwd=None):
    from conftest import binary
    return subprocess.run([binary("imregistryd"), *map(str, args)], capture_output=True, text=True,
                          timeout=20, cwd=cwd)


def test_port_in_use_bad_data_dir_and_bad_flags(registry, tmp_path):
    _, port = registry()
    done = run_tool("--port", port, "--data", tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"imregistryd: cannot listen: TCP 127.0.0.1:{port} is already in use\n"
    done = run_tool("--port", 0, "--data", tmp_path / "missing")
    assert done.returncode == 1
    assert "the data directory" in done.stderr and "does not exist" in done.stderr
    # A data directory whose store file cannot be opened.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "registry.sqlite3").write_bytes(b"this is not a database, just text" * 100)
    done = run_tool("--port", 0, "--data", bad)
    assert done.returncode == 1 and "cannot open the registry in" in done.stderr, done.stderr
    for args in (["--bogus"], ["--port", "99999"], ["--port"], ["nonsense"], ["127.0.0.1:1", "--port", "2"],
                 ["--max-body", "0"], ["--sync", "sometimes"], ["--idle-timeout", "-1"], ["a", "b"]):
        done = run_tool(*args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("imregistryd: ") and "--help" in done.stderr, (args, done.stderr)
    done = run_tool("--help")
    assert done.returncode == 0
    for flag in ("HOST:PORT", "--host", "--port", "--data", "--idle-timeout", "--message-timeout",
                 "--max-connections", "--max-body", "--max-line", "--max-headers", "--sync"):
        assert flag in done.stdout


def test_sync_normal_keeps_its_store_to_itself(registry, tmp_path):
    """--sync normal commits on the io thread with the file locked for the
    server alone: a second server on the same data directory is refused with
    a reason (after its 5 s busy timeout), and the first serves on."""
    proc, port = registry("--sync", "normal")
    assert seed_exchange(port, seed_post("REGISTER ann@127.0.0.1:1")) == response_bytes(200, b"OK")
    done = run_tool("--port", 0, "--data", tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("imregistryd: cannot open the registry in "), done.stderr
    assert "another process is using the file" in done.stderr, done.stderr
    assert seed_exchange(port, seed_post("REGISTER bob@127.0.0.1:2")) == response_bytes(200, b"OK")
    assert get_list(port) == (200, b"ann@127.0.0.1:1,bob@127.0.0.1:2,")
    assert proc.stop() == 0
    # Stopped: the file is free, and everything acknowledged is in it.
    _, port = registry()
    assert get_list(port) == (200, b"ann@127.0.0.1:1,bob@127.0.0.1:2,")


# ------------------------------------------------ large lists, --max-users

def seed_store(path, entries):
    """Adds (name, host, port) rows straight to a stopped server's store file,
    in one transaction: a list of megabytes in well under a second (over
    HTTP each REGISTER costs an fsync). Only the columns of schema version 1
    (seq given, as version 3 needs it), so that the same test runs against an
    older server."""
    import sqlite3
    db = sqlite3.connect(path)
    with db:
        (last,) = db.execute("SELECT coalesce(max(seq), 0) FROM registry").fetchone()
        db.executemany("INSERT INTO registry (name, host, port, seq) VALUES (?, ?, ?, ?)",
                       [(*e, last + 1 + i) for i, e in enumerate(entries)])
    db.close()


def big_list_entries(n):
    """n entries of about 310 bytes each: names and host names near their
    protocol limits (64 and 253 bytes), as an attacker would send them."""
    host_label = "h" * 60
    entries = []
    for i in range(n):
        name = f"user{i:06d}" + "n" * 54
        host = f"{host_label}.{host_label}.{host_label}.{i:06d}" + "d" * 59
        entries.append((name, host, 1024 + i % 60000))
    return entries


def big_registry(registry, tmp_path, n):
    """A registry whose list is n long entries; returns (proc, port, body)."""
    proc, port = registry()
    assert seed_exchange(port, seed_post("REGISTER first@127.0.0.1:1")) == response_bytes(200, b"OK")
    assert proc.stop() == 0
    entries = big_list_entries(n)
    seed_store(tmp_path / "registry.sqlite3", entries)
    proc, port = registry()
    proc.wait_line(rf"^{n + 1} users registered in ")
    body = b"first@127.0.0.1:1," + b"".join(b"%s@%s:%d," % (e[0].encode(), e[1].encode(), e[2])
                                            for e in entries)
    return proc, port, body


def test_list_larger_than_the_reply_queue_is_streamed_whole(registry, tmp_path):
    # 20,000 entries of ~310 bytes: a 6 MiB answer, past the 4 MiB
    # per-connection queue (before streaming, every GET was closed unanswered
    # with "reply queue full, closing").
    _, port, body = big_registry(registry, tmp_path, 20000)
    assert len(body) > 6 * 1024 * 1024

    # Two clients at once, each with a pipelined GET behind the big one.
    results = {}

    def fetch(key):
        s = connect(port, timeout=30)
        s.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            first = read_response(s)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                chunk = s.recv(1)
                assert chunk, head
                head += chunk
            results[key] = (first, head, read_response(s)[0], closed_by_peer(s, 10))
        except Exception as e:  # reported by the main thread
            results[key] = e
        finally:
            s.close()

    threads = [threading.Thread(target=fetch, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for key in ("a", "b"):
        got = results[key]
        assert not isinstance(got, Exception), got
        (status, headers, received), head, after, closed = got
        assert status == 200
        assert int(headers["content-length"]) == len(body)
        assert len(received) == len(body) and received == body
        assert head == b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        assert after == 404 and closed


def test_big_list_answer_is_a_snapshot_while_the_list_changes(registry, tmp_path):
    # 12 MiB: more than the server's queue and both kernels' buffers hold,
    # so the answer is still streaming while the list changes.
    proc, port, body = big_registry(registry, tmp_path, 40000)
    slow = socket.socket()
    # A small receive window, so the answer is still being streamed below.
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    slow.settimeout(30)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    start = recv_exactly(slow, 64)
    assert start.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    # Changes committed while that answer streams: a new entry, one gone.
    assert seed_exchange(port, seed_post("REGISTER late@127.0.0.1:9")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("LOGOUT first@127.0.0.1:1")) == response_bytes(200, b"OK")
    changed = body[len(b"first@127.0.0.1:1,"):] + b"late@127.0.0.1:9,"
    # Another client sees the changes at once (the list is rebuilt for it).
    assert get_list(port) == (200, changed)
    head_size = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
    rest = recv_exactly(slow, head_size + len(body) - 64)
    assert (start + rest)[head_size:] == body  # the list as it was when the GET was answered
    # The next GET on the same connection sees both changes.
    slow.sendall(b"GET /userlist.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, now = read_response(slow)
    assert status == 200
    assert now == changed
    slow.close()


def test_max_users_cap(registry):
    proc, port = registry("--max-users", "3")
    for i in range(3):
        assert seed_exchange(port, seed_post(f"REGISTER u{i}@127.0.0.1:{i + 1}")) == response_bytes(200, b"OK")
    full = seed_exchange(port, seed_post("REGISTER u3@127.0.0.1:4"))
    assert full.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), full
    assert b"user limit reached" in full and b"at most 3 users" in full
    proc.wait_line(r"^REGISTER u3@127\.0\.0\.1:4: 503 \(user limit of 3 reached\)$")
    # A taken name is still told so.
    assert seed_exchange(port, seed_post("REGISTER u0@127.0.0.1:9")).startswith(b"HTTP/1.1 406 ")
    # Pipelined past the cap on one connection: the first fits, the rest are refused.
    assert seed_exchange(port, seed_post("LOGOUT u0@127.0.0.1:1")) == response_bytes(200, b"OK")
    s = connect(port)
    s.sendall(seed_post("REGISTER v0@127.0.0.1:5") + seed_post("REGISTER v1@127.0.0.1:6"))
    assert [read_response(s)[0] for _ in range(2)] == [200, 503]
    s.close()
    assert get_list(port) == (200, b"u1@127.0.0.1:2,u2@127.0.0.1:3,v0@127.0.0.1:5,")
    done = run_tool("--max-users", "0")
    assert done.returncode == 2 and "--max-users" in done.stderr
    done = run_tool("--help")
    assert "--max-users" in done.stdout and "--logout-from-any" in done.stdout


def test_defer_accept_option_is_checked():
    # What it does is tested through RegistryServer(defer_accept=), which
    # sets the same registry_config field (tests/python/test_servers.py).
    for bad in ("-1", "3601", "x", ""):
        done = run_tool("--defer-accept", bad)
        assert done.returncode == 2 and "--defer-accept" in done.stderr
    assert "--defer-accept" in run_tool("--help").stdout


# ------------------------------------------- LOGOUT from the registering IP

def post_from(source, port, body):
    """One POST over a connection from the loopback address `source`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.settimeout(5)
    s.sendall(seed_post(body))
    status, _, answer = read_response(s)
    s.close()
    return status, answer


def test_logout_only_from_the_registering_address(registry, tmp_path):
    proc, port = registry()
    # The address in the body does not matter; the connection's does.
    assert post_from("127.0.0.2", port, "REGISTER amy@127.0.0.3:5000")[0] == 200
    status, answer = post_from("127.0.0.3", port, "LOGOUT amy@127.0.0.3:5000")
    assert status == 403
    assert answer == (b'LOGOUT refused: "amy@127.0.0.3:5000" was registered from 127.0.0.2; '
                      b"only that address may log it out\n")
    assert get_list(port) == (200, b"amy@127.0.0.3:5000,")
    assert post_from("127.0.0.2", port, "LOGOUT amy@127.0.0.3:5000")[0] == 200
    assert get_list(port)[0] == 400

    # Remembered in the store: still enforced after a restart.
    assert post_from("127.0.0.2", port, "REGISTER bob@127.0.0.2:6000")[0] == 200
    assert proc.stop() == 0
    proc, port = registry()
    assert post_from("127.0.0.3", port, "LOGOUT bob@127.0.0.2:6000")[0] == 403
    assert post_from("127.0.0.1", port, "LOGOUT bob@127.0.0.2:6000")[0] == 403
    # A wrong address in the body is still 404, whoever asks.
    assert post_from("127.0.0.3", port, "LOGOUT bob@127.0.0.2:6001")[0] == 404
    assert post_from("127.0.0.2", port, "LOGOUT bob@127.0.0.2:6000")[0] == 200

    # A REGISTER and a LOGOUT from another address pipelined behind it, on
    # connections committed together: the LOGOUT still sees the origin.
    a = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.4", 0))
    b = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.5", 0))
    a.sendall(seed_post("REGISTER cat@127.0.0.4:7000"))
    b.sendall(seed_post("LOGOUT cat@127.0.0.4:7000"))
    assert read_response(a)[0] == 200
    assert read_response(b)[0] in (403, 404)  # 404 if it was committed first
    a.close()
    b.close()
    assert get_list(port) == (200, b"cat@127.0.0.4:7000,")


def test_logout_from_any_keeps_the_seed_rule(registry):
    proc, port = registry("--logout-from-any")
    assert post_from("127.0.0.2", port, "REGISTER amy@127.0.0.2:5000")[0] == 200
    assert post_from("127.0.0.2", port, "REGISTER bob@127.0.0.2:5001")[0] == 200
    assert post_from("127.0.0.3", port, "LOGOUT amy@127.0.0.2:5000")[0] == 200
    assert post_from("127.0.0.2", port, "LOGOUT bob@127.0.0.2:5001")[0] == 200
    assert get_list(port)[0] == 400
