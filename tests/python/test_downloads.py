"""Downloads from Python (protocol 4): improto.RelayClient.download and
improto.aio.RelayClient.download against the in-process RelayServer(files=)
and the real imrelayd --files.

Transfers a test must catch in the middle (pause, cancel, close) run with
rate_limit, so they last seconds on any machine; every wait is for a
condition with a generous bound, never a sleep."""

import asyncio
import functools
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import improto
import improto.aio
from improto import _downloads, _exchanges, relay

from conftest import REPO, TIMEOUT, Tool, wait_for

KiB, MiB = 1 << 10, 1 << 20
# The transfers caught in the middle: bytes per second, and a file well over
# the receiver's 4 MiB window (a rate-limited receiver still takes a window's
# worth at once, so a smaller file would be over on the server at once).
SLOW = 3_000_000
BIG = 16 * MiB


@functools.lru_cache(maxsize=None)
def payload(size, seed):
    """Deterministic bytes that differ per seed."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{n}".encode()).digest()
        n += 1
    return bytes(out[:size])


@pytest.fixture
def served(tmp_path):
    d = tmp_path / "served"
    d.mkdir()
    (d / "hello.txt").write_bytes(b"hello")
    (d / "empty").write_bytes(b"")
    (d / "big.bin").write_bytes(payload(BIG, "big"))
    (d / "my song.mp3").write_bytes(payload(300 * KiB + 7, "song"))
    return d


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture(params=["inproc", "imrelayd"])
def server(request, served):
    """(host, port) of a relay server serving `served`."""
    if request.param == "inproc":
        with improto.RelayServer(files=served) as srv:
            yield srv.address
    else:
        tool = Tool("imrelayd", "--port", 0, "--files", served)
        try:
            yield tool.listening()
        finally:
            tool.stop()


@pytest.fixture
def inproc(served):
    with improto.RelayServer(files=served) as srv:
        yield srv.address


async def until(cond, what):
    """Waits on the loop (asyncio.sleep) for cond(); fails after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def client(name, address, **kw):
    return improto.RelayClient(name, address[0], address[1], timeout=TIMEOUT, **kw)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(d):
    return sorted(p.name for p in Path(d).iterdir() if ".part" in p.name)


def check_progress(events, size, start=0):
    """The callbacks: from `start` to `size`, never backwards, all one download."""
    assert events, "no progress callback"
    assert events[0].bytes == start and events[0].start == start
    assert events[-1].bytes == size and events[-1].total == size and events[-1].percent == 100.0
    assert all(a.bytes <= b.bytes for a, b in zip(events, events[1:])), [e.bytes for e in events]
    assert len({e.id for e in events}) == 1
    assert all(e.rate >= 0 for e in events)


# ------------------------------------------------------------------ blocking

def test_list_files_every_page_and_one_page(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    # 300 names of 250 bytes: more than one 64 KiB page.
    names = sorted(f"{i:03d}" + "x" * 247 for i in range(300))
    for i, n in enumerate(names):
        (d / n).write_bytes(b"y" * i)
    with improto.RelayServer(files=d) as srv, client("alice", srv.address) as c:
        files = c.list_files()
        assert [f.name for f in files] == names
        assert [f.size for f in files] == list(range(300))
        page = c.list_files_page()
        assert page.more and 0 < len(page.files) < 300
        rest = c.list_files_page(after=page.files[-1].name)
        assert [f.name for f in page.files + rest.files] == names and not rest.more


def test_whole_downloads(server, served, out):
    with client("alice", server) as c:
        assert [(f.name, f.size) for f in c.list_files()] == [
            ("big.bin", BIG), ("empty", 0), ("hello.txt", 5), ("my song.mp3", 300 * KiB + 7)]
        for name in ("hello.txt", "my song.mp3", "big.bin"):
            events = []
            d = c.download(name, out, progress=events.append)
            assert d.file == name and d.size == (served / name).stat().st_size and d.offset == 0
            assert d.sha256 == sha256(served / name)
            r = d.result(TIMEOUT)
            data = (served / name).read_bytes()
            assert (out / name).read_bytes() == data
            assert r == improto.DownloadResult(name, str(out / name), len(data), sha256(served / name),
                                               0, len(data) - 1, data[-1])
            check_progress(events, len(data))
            assert d.done() and d.progress.bytes == len(data)
        # The empty file: no last byte.
        r = c.download("empty", out).result(TIMEOUT)
        assert r.size == 0 and r.last_offset is None and r.last_byte == 0
        assert r.sha256 == hashlib.sha256(b"").hexdigest() and (out / "empty").read_bytes() == b""
        assert leftovers(out) == [] and c.downloads() == []


def test_pause_resume(server, served, out):
    with client("alice", server) as c:
        events = []
        d = c.download("big.bin", out, progress=events.append, rate_limit=SLOW)
        wait_for(lambda: d.progress.bytes >= 256 * KiB, "the first bytes")
        d.pause()
        assert d.paused and d.progress.paused and d.progress.rate == 0
        assert not d.done()
        # The chat goes on meanwhile.
        assert c.list_users() == ["alice"]
        d.resume()
        assert not d.paused
        r = d.result(TIMEOUT * 3)
        assert r.sha256 == sha256(served / "big.bin") == sha256(out / "big.bin")
        check_progress(events, BIG)


def test_cancel_removes_the_part_file(server, out):
    with client("alice", server) as c:
        d = c.download("big.bin", out, rate_limit=SLOW)
        wait_for(lambda: d.progress.bytes > 0, "the first bytes")
        d.cancel()
        assert d.done()
        with pytest.raises(improto.CancelledError) as exc:
            d.result(0)
        assert exc.value.errc == "cancelled" and "cancelled at the user's request" in str(exc.value)
        assert leftovers(out) == [] and not (out / "big.bin").exists()
        d.cancel()  # over already: nothing to do
        # The server forgot the id.
        with pytest.raises(improto.NotFoundError) as exc:
            d.pause()
        assert exc.value.code == 107 and "ERROR 107 No such transfer" in str(exc.value)
        # The same name again, from scratch.
        r = c.download("big.bin", out).result(TIMEOUT)
        assert r.resumed_from == 0 and r.size == BIG


def test_resume_after_the_client_closed(server, served, out):
    c = client("alice", server).connect()
    d = c.download("big.bin", out, rate_limit=SLOW)
    wait_for(lambda: d.progress.bytes >= 256 * KiB, "the first bytes")
    c.close()  # the download ends, NAME.part stays
    with pytest.raises(improto.ConnectionClosedError) as exc:
        d.result(TIMEOUT)
    assert "big.bin.part is kept" in str(exc.value)
    part = out / "big.bin.part"
    have = part.stat().st_size
    assert 0 < have < BIG and not (out / "big.bin").exists()
    assert (served / "big.bin").read_bytes()[:have] == part.read_bytes()
    with client("alice", server) as c2:
        events = []
        d2 = c2.download("big.bin", out, progress=events.append)
        assert d2.offset == have
        r = d2.result(TIMEOUT)
        assert r.resumed_from == have and r.sha256 == sha256(served / "big.bin") == sha256(out / "big.bin")
        check_progress(events, BIG, start=have)
    assert leftovers(out) == []


def test_resume_of_a_part_file_written_earlier(server, served, out):
    data = (served / "my song.mp3").read_bytes()
    (out / "my song.mp3.part").write_bytes(data[:100_000])
    (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {sha256(served / 'my song.mp3')}\n")
    with client("alice", server) as c:
        r = c.download("my song.mp3", out).result(TIMEOUT)
    assert r.resumed_from == 100_000 and (out / "my song.mp3").read_bytes() == data
    assert leftovers(out) == []


def test_part_of_another_version_starts_over(server, served, out):
    data = (served / "my song.mp3").read_bytes()
    (out / "my song.mp3.part").write_bytes(b"old" * 1000)
    (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {'0' * 64}\n")  # another file
    with client("alice", server) as c:
        r = c.download("my song.mp3", out).result(TIMEOUT)
        assert r.resumed_from == 0 and (out / "my song.mp3").read_bytes() == data
        # A .part without its hash beside it is not trusted either.
        (out / "hello.txt.part").write_bytes(b"HE")
        r = c.download("hello.txt", out).result(TIMEOUT)
        assert r.resumed_from == 0 and (out / "hello.txt").read_bytes() == b"hello"


def test_hash_mismatch_raises_integrity_error(server, served, out):
    # A part file whose bytes are not the file's, under the right hash: the
    # rest arrives intact and the whole does not match.
    data = (served / "my song.mp3").read_bytes()
    (out / "my song.mp3.part").write_bytes(b"\0" * 50_000)
    (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {sha256(served / 'my song.mp3')}\n")
    with client("alice", server) as c:
        d = c.download("my song.mp3", out)
        assert d.offset == 50_000
        with pytest.raises(improto.IntegrityError) as exc:
            d.result(TIMEOUT)
    assert exc.value.errc == "hash_mismatch"
    assert "SHA-256" in str(exc.value) and sha256(served / "my song.mp3") in str(exc.value)
    # Nothing half-right is left looking complete.
    assert not (out / "my song.mp3").exists() and leftovers(out) == []


def test_errors(server, out, tmp_path):
    with client("alice", server) as c:
        with pytest.raises(improto.NotFoundError) as exc:
            c.download("nope.txt", out)
        assert exc.value.code == 106 and "no file named 'nope.txt'" in str(exc.value)
        with pytest.raises(improto.Error) as exc:
            c.download("../hello.txt", out)
        assert exc.value.errc == "invalid_argument" and "not a valid file name" in str(exc.value)
        with pytest.raises(improto.NotFoundError) as exc:
            c.download("hello.txt", tmp_path / "missing")
        assert "is not a directory" in str(exc.value)
        d = c.download("big.bin", out, rate_limit=SLOW)
        with pytest.raises(improto.Error) as exc:
            c.download("big.bin", out)
        assert exc.value.errc == "invalid_argument" and "being downloaded already" in str(exc.value)
        assert c.downloads() == [d]
        d.cancel()
        with pytest.raises(improto.ConfigError):
            c.download("hello.txt", out, rate_limit=-1)
        assert leftovers(out) == []
        assert c.list_users() == ["alice"]  # the connection is fine after all that


def test_server_without_files(out):
    with improto.RelayServer() as srv, client("alice", srv.address) as c:
        assert c.list_files() == []
        with pytest.raises(improto.NotFoundError) as exc:
            c.download("hello.txt", out)
        assert exc.value.code == 106
    assert list(out.iterdir()) == []


def test_server_transfer_limits(served, out, tmp_path):
    with pytest.raises(improto.ConfigError):
        improto.RelayServer(files=tmp_path / "missing")
    with pytest.raises(improto.ConfigError):
        improto.RelayServer(files=served, max_transfers=0)
    with pytest.raises(improto.ConfigError):
        improto.RelayServer(files=served, paused_timeout=0)
    with improto.RelayServer(files=served, max_user_transfers=1) as srv, client("alice", srv.address) as c:
        d = c.download("big.bin", out, rate_limit=SLOW)
        with pytest.raises(improto.OverloadedError) as exc:
            c.download("hello.txt", out)
        assert exc.value.code == 109
        d.cancel()
        assert c.download("hello.txt", out).result(TIMEOUT).size == 5


def test_two_clients_same_file(inproc, served, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for o in outs:
        o.mkdir()
    with client("alice", inproc) as a, client("bob", inproc) as b:
        da = a.download("big.bin", outs[0], rate_limit=4 * SLOW)
        db = b.download("big.bin", outs[1])
        assert da.id != db.id
        for d, o in ((db, outs[1]), (da, outs[0])):
            assert d.result(TIMEOUT * 2).sha256 == sha256(served / "big.bin") == sha256(o / "big.bin")


# Half the transfer engine's 30 s silence timeout: a download that ends
# within it learned of the dead server from the TCP connection, not from
# the silence (which would raise improto.TimeoutError from result()).
NOTICED = 15.0


@pytest.mark.parametrize("api", ["blocking", "asyncio"])
def test_a_server_killed_mid_download_is_noticed_at_once(served, out, api):
    tool = Tool("imrelayd", "--port", 0, "--files", served)

    def kill():
        tool.popen.kill()
        tool.popen.wait(TIMEOUT)

    if api == "blocking":
        with client("alice", tool.listening()) as c:
            d = c.download("big.bin", out, rate_limit=SLOW)
            wait_for(lambda: d.progress.bytes > 0, "the first bytes")
            kill()  # no request in flight: only the hangup watch can tell
            with pytest.raises(improto.ConnectionClosedError) as exc:
                d.result(NOTICED)
            assert c.downloads() == []
    else:
        async def main():
            c = await improto.aio.RelayClient.connect("alice", *tool.listening(), timeout=TIMEOUT)
            try:
                d = await c.download("big.bin", out, rate_limit=SLOW)
                await until(lambda: d.progress.bytes > 0, "the first bytes")
                kill()
                with pytest.raises(improto.ConnectionClosedError) as exc:
                    await d.result(NOTICED)
                return exc
            finally:
                await c.close()
        exc = asyncio.run(main())
    assert "the connection to the server ended" in str(exc.value)
    assert "big.bin.part is kept" in str(exc.value)
    # A new server resumes from what was kept.
    have = (out / "big.bin.part").stat().st_size
    assert 0 < have < BIG
    with improto.RelayServer(files=served) as srv, client("bob", srv.address) as c:
        r = c.download("big.bin", out).result(TIMEOUT)
        assert r.resumed_from == have and r.sha256 == sha256(served / "big.bin") == sha256(out / "big.bin")


def test_a_stopped_in_process_server_ends_a_blocking_download(served, out):
    srv = improto.RelayServer(files=served)
    with client("alice", srv.address) as c:
        d = c.download("big.bin", out, rate_limit=SLOW)
        wait_for(lambda: d.progress.bytes > 0, "the first bytes")
        srv.stop()
        with pytest.raises(improto.ConnectionClosedError, match="the server closed it"):
            d.result(NOTICED)
    assert (out / "big.bin.part").exists() and not (out / "big.bin").exists()


def test_interpreter_exit_during_a_download(inproc, out):
    """A program that exits while downloading exits cleanly; the part file stays."""
    code = f"""
import improto, sys
c = improto.RelayClient("exiter", {inproc[0]!r}, {inproc[1]}, timeout={TIMEOUT})
c.connect()
d = c.download("big.bin", {str(out)!r}, rate_limit={SLOW})
while d.progress.bytes == 0:
    d.wait(0.01)
print("exiting at", d.progress.bytes, flush=True)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exiting at ") and r.stderr == ""
    assert (out / "big.bin.part").exists() and not (out / "big.bin").exists()


# ------------------------------------------- how a download starts, without I/O

WHERE = "relay 127.0.0.1:1"


class Driver:
    """Drives _downloads.start() as the clients do, with no server: the
    requests get scripted replies (an exception in the script is raised, as
    a failing socket would), an Offload runs in place, a Begin is answered
    "handle" (or raises `begin_error`)."""

    def __init__(self, *replies, begin_error=None):
        self.replies = list(replies)
        self.requests = []
        self.begun = []
        self.begin_error = begin_error

    def __call__(self, step):
        if isinstance(step, _exchanges.Request):
            self.requests.append(step)
            reply = self.replies.pop(0)
            if isinstance(reply, BaseException):
                raise reply
            return reply
        if isinstance(step, _downloads.Offload):
            return step()
        self.begun.append(step)
        if self.begin_error is not None:
            raise self.begin_error
        return "handle"

    def sent(self):
        """The requests as (class name, offset or id)."""
        decoder = relay.Decoder(direction=relay.Direction.TO_SERVER)
        msgs = [m for r in self.requests for m in decoder.feed(r.data)]
        return [(type(m).__name__, m.offset if isinstance(m, relay.Download) else m.id) for m in msgs]


def start(name, directory):
    return _downloads.start(name, directory, WHERE, "127.0.0.1", "127.0.0.1", 0,
                            lambda f, *a: f(*a), None, lambda t: None)


def transfer(tid, offset=0, sha="b" * 64, size=100):
    return relay.Transfer(id=tid, size=size, offset=offset, sha256=sha, udp_port=4242)


def test_start_tries_again_from_zero_once_then_says_the_file_keeps_changing(out):
    (out / "f.bin.part").write_bytes(b"x" * 10)
    (out / "f.bin.part.sha256").write_text(f"100 {'a' * 64}\n")
    # The server's file differs from the .part's (another hash), then its
    # TRANSFER does not start where asked: both are given up.
    driver = Driver(transfer(1, offset=10), relay.Cancelled(id=1),
                    transfer(2, offset=5), relay.Cancelled(id=2))
    with pytest.raises(improto.TransportError, match="the file kept changing on the server"):
        _exchanges.run(start("f.bin", out), driver)
    assert driver.sent() == [("Download", 10), ("Cancel", 1), ("Download", 0), ("Cancel", 2)]
    assert driver.begun == [] and not (out / "f.bin.part").exists()
    # The name is free again; ERROR 106 reads as "no such file".
    with pytest.raises(improto.NotFoundError, match="no file named 'f.bin'") as exc:
        _exchanges.run(start("f.bin", out), Driver(relay.ErrorReply(code=106, text="No such file")))
    assert exc.value.code == 106


def test_start_passes_failures_through_and_gives_the_transfer_up(out):
    # A timeout on DOWNLOAD: raised as it is, nothing else sent.
    timeout = improto.TimeoutError("slow", errc="timeout")
    driver = Driver(timeout)
    with pytest.raises(improto.TimeoutError) as exc:
        _exchanges.run(start("f.bin", out), driver)
    assert exc.value is timeout and driver.sent() == [("Download", 0)]
    # Begin failed: CANCEL goes out; its own failure is ignored, Begin's error raised.
    boom = RuntimeError("start failed")
    driver = Driver(transfer(3), improto.ConnectionClosedError("gone", errc="connection_closed"),
                    begin_error=boom)
    with pytest.raises(RuntimeError) as exc:
        _exchanges.run(start("f.bin", out), driver)
    assert exc.value is boom and driver.sent() == [("Download", 0), ("Cancel", 3)]
    # Neither kept the name.
    driver = Driver(transfer(4))
    assert _exchanges.run(start("f.bin", out), driver) == "handle"
    begun = driver.begun[0]
    begun.transfer.core.close("connection_closed", "test over")
    begun.transfer.plan.release()


def test_start_ends_with_begin_and_both_drivers_agree(out):
    def check(driver):
        (begun,) = driver.begun
        assert begun.server == ("127.0.0.1", 4242)
        assert begun.transfer.id == 5 and begun.transfer.offset == 0 and begun.transfer.size == 100
        assert (out / "f.bin.part.sha256").read_text() == f"100 {'b' * 64}\n"
        begun.transfer.core.close("connection_closed", "test over")
        begun.transfer.plan.release()

    driver = Driver(transfer(5))
    assert _exchanges.run(start("f.bin", out), driver) == "handle"
    check(driver)

    async def one(step, driver=Driver(transfer(5))):
        await asyncio.sleep(0)
        return driver(step)
    assert asyncio.run(_exchanges.run_async(start("f.bin", out), one)) == "handle"
    check(one.__defaults__[0])


# ------------------------------------------------------------------- asyncio

def test_aio_download_pause_resume_and_chat(server, served, out):
    async def main():
        loop_thread = threading.get_ident()
        alice = await improto.aio.RelayClient.connect("alice", *server, timeout=TIMEOUT)
        bob = await improto.aio.RelayClient.connect("bob", *server, timeout=TIMEOUT)
        try:
            events, threads = [], set()

            def progress(p):
                threads.add(threading.get_ident())
                events.append(p)

            d = await alice.download("big.bin", out, progress, rate_limit=SLOW)
            assert isinstance(d, improto.aio.Download) and d.offset == 0
            # The loop is free during the download: a message goes through.
            _, got = await asyncio.gather(alice.send("bob", b"still here"), bob.receive(TIMEOUT))
            assert got.body == b"still here"
            await until(lambda: d.progress.bytes >= 256 * KiB, "the first bytes")
            await d.pause()
            assert d.paused
            await d.resume()
            r = await asyncio.wait_for(d, TIMEOUT * 3)
            assert r.sha256 == sha256(served / "big.bin") == sha256(out / "big.bin")
            assert r.last_offset == BIG - 1 and r.last_byte == (served / "big.bin").read_bytes()[-1]
            assert await d.result(0) == r and d.done()
            check_progress(events, BIG)
            assert threads == {loop_thread}  # callbacks run on the loop
            # Whole and small.
            r = await (await bob.download("hello.txt", out)).result(TIMEOUT)
            assert r.size == 5 and (out / "hello.txt").read_bytes() == b"hello"
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(main())


def test_aio_cancel_errors_and_resume(server, served, out):
    async def main():
        c = await improto.aio.RelayClient.connect("alice", *server, timeout=TIMEOUT)
        try:
            d = await c.download("big.bin", out, rate_limit=SLOW)
            await until(lambda: d.progress.bytes > 0, "the first bytes")
            await d.cancel()
            with pytest.raises(improto.CancelledError):
                await d
            assert leftovers(out) == []
            with pytest.raises(improto.NotFoundError) as exc:
                await c.download("nope", out)
            assert exc.value.code == 106
            # Hash mismatch.
            data = (served / "my song.mp3").read_bytes()
            (out / "my song.mp3.part").write_bytes(b"\1" * 1000)
            (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {sha256(served / 'my song.mp3')}\n")
            with pytest.raises(improto.IntegrityError):
                await (await c.download("my song.mp3", out))
            assert leftovers(out) == [] and not (out / "my song.mp3").exists()
            # Resume of a good part file.
            (out / "my song.mp3.part").write_bytes(data[:200_000])
            (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {sha256(served / 'my song.mp3')}\n")
            r = await (await c.download("my song.mp3", out)).result(TIMEOUT)
            assert r.resumed_from == 200_000 and (out / "my song.mp3").read_bytes() == data
            # Closing the client ends a running download; the part stays.
            d = await c.download("big.bin", out, rate_limit=SLOW)
            await until(lambda: d.progress.bytes > 0, "the first bytes")
        finally:
            await c.close()
        with pytest.raises(improto.ConnectionClosedError):
            await asyncio.wait_for(d, TIMEOUT)
        assert (out / "big.bin.part").exists()

    asyncio.run(main())


def test_aio_part_of_another_version_starts_over_and_argument_errors(server, served, out, tmp_path):
    async def main():
        c = await improto.aio.RelayClient.connect("alice", *server, timeout=TIMEOUT)
        try:
            data = (served / "my song.mp3").read_bytes()
            (out / "my song.mp3.part").write_bytes(b"old" * 1000)
            (out / "my song.mp3.part.sha256").write_text(f"{len(data)} {'0' * 64}\n")  # another file
            r = await (await c.download("my song.mp3", out)).result(TIMEOUT)
            assert r.resumed_from == 0 and (out / "my song.mp3").read_bytes() == data
            (out / "hello.txt.part").write_bytes(b"HE")  # no hash beside it: not trusted
            r = await (await c.download("hello.txt", out)).result(TIMEOUT)
            assert r.resumed_from == 0 and (out / "hello.txt").read_bytes() == b"hello"
            with pytest.raises(improto.Error) as exc:
                await c.download("../hello.txt", out)
            assert exc.value.errc == "invalid_argument" and "not a valid file name" in str(exc.value)
            with pytest.raises(improto.NotFoundError, match="is not a directory"):
                await c.download("hello.txt", tmp_path / "missing")
            d = await c.download("big.bin", out, rate_limit=SLOW)
            with pytest.raises(improto.Error) as exc:
                await c.download("big.bin", out)
            assert exc.value.errc == "invalid_argument" and "being downloaded already" in str(exc.value)
            assert c.downloads() == [d]
            await d.cancel()
            assert leftovers(out) == [] and await c.list_users() == ["alice"]
        finally:
            await c.close()

    asyncio.run(main())


def test_aio_server_without_files(out):
    async def main():
        with improto.RelayServer() as srv:
            c = await improto.aio.RelayClient.connect("alice", *srv.address, timeout=TIMEOUT)
            try:
                assert await c.list_files() == []
                page = await c.list_files_page()
                assert page.files == [] and not page.more
                with pytest.raises(improto.NotFoundError):
                    await c.download("hello.txt", out)
            finally:
                await c.close()

    asyncio.run(main())


def test_fetch_example(inproc, served, out):
    """examples/python/fetch.py: the file list, progress lines and imrelay's final line."""
    script = REPO / "examples" / "python" / "fetch.py"
    r = subprocess.run([sys.executable, script, "--host", inproc[0], "--port", str(inproc[1]),
                        "my song.mp3", out], capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 0, r.stderr
    data = (served / "my song.mp3").read_bytes()
    lines = r.stdout.splitlines()
    assert "file: my song.mp3 (307207 bytes)" in lines
    assert lines[-1] == (f"downloaded my song.mp3: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}, "
                         f"last byte at offset {len(data) - 1} (0x{data[-1]:02x}) -> {out / 'my song.mp3'}")
    assert any(l.startswith("progress: my song.mp3 100% ") for l in lines)
    r = subprocess.run([sys.executable, script, "--port", str(inproc[1]), "nope", out],
                       capture_output=True, text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 1 and "no file named 'nope' (ERROR 106)" in r.stderr
