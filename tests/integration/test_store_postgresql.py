"""imregistryd and imbuddyd on PostgreSQL (--store postgresql://...): the
SQLite scenarios again with the same expected bytes, two buddy nodes on one
database, and PostgreSQL restarted under load. A throwaway PostgreSQL server
(tests/support/postgres.py) is started for this module and always stopped.
"""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import postgres  # noqa: E402
import test_buddy_server as buddy_tests  # noqa: E402
import test_registry as registry_tests  # noqa: E402
from test_buddy_server import EXISTS, NO_SUCH_USER, OK, Server, check_clean_exit, request, udp  # noqa: E402
from test_registry import assert_clean_exit, get_list, response_bytes, seed_exchange, seed_post  # noqa: E402

pytestmark = pytest.mark.skipif(not postgres.available(),
                                reason="the PostgreSQL server is not installed")


pg, database = postgres.pytest_fixtures(f"it{os.getpid()}")


# ------------------------------------------- the SQLite scenarios, on PostgreSQL

@pytest.fixture
def registry(start, tmp_path, database):
    """As test_registry's fixture, with the list in `database`."""
    procs = []

    def _registry(*flags, data=None):
        proc = start("imregistryd", "--port", "0", "--data", data or tmp_path,
                     "--store", database, *flags)
        procs.append(proc)
        return proc, proc.listening()[1]
    yield _registry
    for proc in procs:
        assert_clean_exit(proc)


@pytest.fixture
def buddyd(start, tmp_path, database):
    """As test_buddy_server's fixture, with users and lists in `database`."""
    servers = []

    def _start(*flags, data=None):
        data = data or tmp_path / "data"
        data.mkdir(exist_ok=True)
        proc = start("imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", data,
                     "--store", database, *flags)
        servers.append(proc)
        return Server(proc, data)

    yield _start
    for proc in servers:
        killed = proc.popen.returncode == -signal.SIGKILL
        code = check_clean_exit(proc)
        assert killed or code == 0, (proc.args, code, proc.stderr_lines[-5:])


# Collected here, they run with this module's fixtures: same requests, same
# expected bytes, PostgreSQL underneath.
test_registry_seed_bytes = registry_tests.test_seed_client_bytes_get_exact_answers
test_registry_http_errors = registry_tests.test_http_errors_and_closing
test_registry_pipelined = registry_tests.test_pipelined_requests_answered_in_order_and_see_earlier_writes
test_registry_kill_9 = registry_tests.test_concurrent_registrations_survive_kill_9
test_registry_max_users = registry_tests.test_max_users_cap
test_registry_logout_origin = registry_tests.test_logout_only_from_the_registering_address
test_buddy_reg_codes = buddy_tests.test_reg_codes
test_buddy_add_del_codes = buddy_tests.test_add_and_del_codes
test_buddy_get_replies = buddy_tests.test_get_replies
test_buddy_concurrent_registrations = buddy_tests.test_concurrent_registrations
test_buddy_durable_across_restart = buddy_tests.test_durable_across_restart
test_buddy_durable_across_kill_9 = buddy_tests.test_durable_across_kill_9
test_buddy_stop_while_committing = buddy_tests.test_stop_while_committing_answers_first


def test_registry_restart_keeps_the_list_in_the_database(registry, pg, database):
    proc, port = registry()
    assert seed_exchange(port, seed_post("REGISTER x@127.0.0.1:1")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("REGISTER y@127.0.0.1:2")) == response_bytes(200, b"OK")
    assert seed_exchange(port, seed_post("LOGOUT x@127.0.0.1:1")) == response_bytes(200, b"OK")
    assert proc.stop() == 0
    again, port = registry()
    again.wait_line(r"^1 user registered in postgresql://postgres@127\.0\.0\.1:\d+/")
    assert get_list(port) == (200, b"y@127.0.0.1:2,")
    assert pg.psql("SELECT name, host, port FROM improto_registry", database).split() == \
        ["y|127.0.0.1|2"]
    assert pg.psql("SELECT version FROM improto_schema WHERE store = 'registry'", database).strip() == "1"


# ------------------------------------------------------------- several nodes

def wait_for(predicate, timeout=30.0):
    """Generous: the machine may be loaded; returns as soon as it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_two_buddy_nodes_on_one_database_see_each_others_users(buddyd, tmp_path):
    a = buddyd(data=tmp_path / "a")
    b = buddyd(data=tmp_path / "b")
    assert request(a.tcp, b"REG alice\n") == OK
    assert request(b.tcp, b"REG bob\n") == OK
    # The database decides: a name taken on one node is taken on the other.
    assert request(b.tcp, b"REG alice\n") == EXISTS
    assert request(a.tcp, b"REG bob\n") == EXISTS
    # ADD on b naming a user registered on a, at once: the store knows her.
    assert request(b.tcp, b"ADD alice bob\n") == OK
    assert request(b.tcp, b"ADD bob nobody\n") == NO_SUCH_USER
    assert udp(b.udp, b"GET alice") == b"bob 101 0.0.0.0 0\n"
    # a's copy follows the change feed.
    assert wait_for(lambda: udp(a.udp, b"GET alice") == b"bob 101 0.0.0.0 0\n")
    assert wait_for(lambda: udp(a.udp, b"GET bob") == b"")
    # A DEL on a right after the ADD on b: both copies end with the database's state.
    assert request(a.tcp, b"DEL alice bob\n") == OK
    assert udp(a.udp, b"GET alice") == b""
    assert wait_for(lambda: udp(b.udp, b"GET alice") == b"")
    # Interleaved changes to one list from both nodes converge.
    for i in range(10):
        node = a if i % 2 else b
        assert request(node.tcp, b"REG c%d\n" % i) == OK
        assert request(node.tcp, b"ADD alice c%d\n" % i) == OK
    assert request(a.tcp, b"DEL alice c3\n") == OK
    assert request(b.tcp, b"DEL alice c4\n") == OK
    expected = b"".join(b"c%d 101 0.0.0.0 0\n" % i for i in range(10) if i not in (3, 4))
    assert wait_for(lambda: udp(a.udp, b"GET alice") == expected)
    assert wait_for(lambda: udp(b.udp, b"GET alice") == expected)


# --------------------------------------------- PostgreSQL restarted under load

REGISTRY_503 = b"HTTP/1.1 503 Service Unavailable\r\n"
BUDDY_503 = b"503 UNAVAILABLE\n"


def test_postgresql_restarted_under_load(start, tmp_path):
    """Writers keep going while PostgreSQL goes away and comes back: every
    acknowledged write is there after, the answers while it is down are the
    clear 503s, and writes succeed again once it is back."""
    with postgres.PostgresServer() as server:
        url = server.create_database("restart")
        reg = start("imregistryd", "--port", "0", "--data", tmp_path, "--store", url)
        reg_port = reg.listening()[1]
        (tmp_path / "b").mkdir()
        bud = start("imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", tmp_path / "b",
                    "--store", url)
        bsrv = Server(bud, tmp_path / "b")

        lock = threading.Lock()
        acked_names, acked_users = [], []
        answers = {"registry": {}, "buddy": {}}
        other = []
        stop = threading.Event()

        def count(kind, answer):
            key = answer.split(b"\r\n")[0] if kind == "registry" else answer
            with lock:
                answers[kind][key] = answers[kind].get(key, 0) + 1

        def registry_writer(w):
            k = 0
            while not stop.is_set():
                name = f"r{w}_{k}"
                k += 1
                try:
                    answer = seed_exchange(reg_port, seed_post(f"REGISTER {name}@127.0.0.1:{1000 + w}"))
                except OSError as e:
                    with lock:
                        other.append(("registry", repr(e)))
                    continue
                count("registry", answer)
                if answer == response_bytes(200, b"OK"):
                    with lock:
                        acked_names.append(name)
                elif not answer.startswith(REGISTRY_503):
                    with lock:
                        other.append(("registry", answer))

        def buddy_writer(w):
            k = 0
            while not stop.is_set():
                user = b"b%d_%d" % (w, k)
                k += 1
                try:
                    answer = request(bsrv.tcp, b"REG %s\n" % user, timeout=10)
                except OSError as e:
                    with lock:
                        other.append(("buddy", repr(e)))
                    continue
                count("buddy", answer)
                if answer == OK:
                    with lock:
                        acked_users.append(user)
                elif answer != BUDDY_503:
                    with lock:
                        other.append(("buddy", answer))

        threads = [threading.Thread(target=registry_writer, args=(w,)) for w in range(3)]
        threads += [threading.Thread(target=buddy_writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()

        def acked():
            with lock:
                return len(acked_names), len(acked_users)

        def refused():
            with lock:
                return (answers["registry"].get(REGISTRY_503.rstrip(b"\r\n"), 0),
                        answers["buddy"].get(BUDDY_503, 0))

        try:
            # Writing happily first.
            assert wait_for(lambda: min(acked()) >= 20), acked()
            started = time.monotonic()
            server.stop()
            # While it is down: the clear errors, for both servers.
            assert wait_for(lambda: min(refused()) >= 5), (refused(), other)
            down_for = time.monotonic() - started
            before_restart = acked()
            server.start()
            # Recovery: acknowledged writes resume on both.
            assert wait_for(lambda: min(a - b for a, b in zip(acked(), before_restart)) >= 20), \
                (acked(), before_restart, answers)
            recovered = time.monotonic() - started
            # A crash (immediate shutdown, WAL replay at start) as well.
            server.crash()
            assert wait_for(lambda: refused()[0] >= 10 and refused()[1] >= 10), refused()
            before_crash = acked()
            server.start()
            assert wait_for(lambda: min(a - b for a, b in zip(acked(), before_crash)) >= 20), \
                (acked(), before_crash)
        finally:
            stop.set()
            for t in threads:
                t.join(30)

        assert other == [], other[:5]
        # Every acknowledged write is in the database...
        stored = set(server.psql("SELECT name FROM improto_registry", url).split())
        missing = [n for n in acked_names if n not in stored]
        assert missing == [], missing[:10]
        users = set(server.psql("SELECT userid FROM improto_buddy_users", url).split())
        missing = [u for u in acked_users if u.decode() not in users]
        assert missing == [], missing[:10]
        # ...and in the servers' answers.
        status, body = get_list(reg_port)
        listed = {e.split("@")[0] for e in body.decode().rstrip(",").split(",")}
        assert set(acked_names) <= listed
        for u in acked_users[:: max(1, len(acked_users) // 50)]:
            assert request(bsrv.tcp, b"REG %s\n" % u) == EXISTS
        reg.wait_line(r": 503 \(.*(connection|connect)")
        print(f"\nrestart under load: acked {len(acked_names)} registry / {len(acked_users)} buddy "
              f"writes, all present; 503 answers {refused()}; first stop->errors {down_for:.2f} s, "
              f"stop->recovered {recovered:.2f} s; answers {answers}")
        assert_clean_exit(reg)
        assert check_clean_exit(bud) == 0


# ------------------------------------------------------------------ the tools

def test_store_flag_errors(start, tmp_path):
    import subprocess
    from conftest import binary
    for tool in ("imregistryd", "imbuddyd"):
        r = subprocess.run([binary(tool), "--store", str(tmp_path / "x.sqlite3")],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2, (tool, r.stderr)
        assert "--store: expected a postgresql:// URL" in r.stderr, r.stderr
        # Nothing listens there: a sentence, exit 1, the password hidden.
        args = ["--store", "postgresql://postgres:s3cret@127.0.0.1:1/x"]
        args += ["--port", "0"] if tool == "imregistryd" else ["--tcp-port", "0", "--udp-port", "0"]
        r = subprocess.run([binary(tool), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (tool, r.stderr)
        assert "cannot connect to PostgreSQL" in r.stderr, r.stderr
        assert "postgresql://postgres:***@127.0.0.1:1/x" in r.stderr and "s3cret" not in r.stderr
