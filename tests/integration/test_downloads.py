"""Protocol 4 downloads on loopback: imrelayd --files and imrelay /get.

Slow transfers that a test must catch in the middle (pause, cancel, kills)
use imrelay's --limit-rate, so they last seconds on any machine instead of
racing the loopback link. Every wait is for a line or a condition."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import binary, connect, recv_until

MiB = 1 << 20


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size, seed):
    # Deterministic bytes that differ per seed (no all-zero shortcuts).
    h = hashlib.sha256(seed.encode()).digest()
    block = (h * (MiB // len(h) + 1))[:MiB]
    with open(path, "wb") as f:
        left, n = size, 0
        while left > 0:
            piece = hashlib.sha256(block + n.to_bytes(8, "big")).digest()
            chunk = (piece * (MiB // 32))[: min(MiB, left)]
            f.write(chunk)
            left -= len(chunk)
            n += 1


def wait_for(cond, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def served(tmp_path):
    d = tmp_path / "served"
    d.mkdir()
    return d


@pytest.fixture
def server(start, served):
    def _server(*flags):
        proc = start("imrelayd", "--port", "0", "--files", served, *flags)
        return proc, proc.listening()[1]
    return _server


class Client:
    def __init__(self, start, port, name, *flags):
        self.proc = start("imrelay", name, "127.0.0.1", "--port", port, "--no-presence", *flags,
                          stdin=subprocess.PIPE)
        self.proc.wait_line(r"^connected as", stream="stdout", timeout=20)

    def send(self, line):
        self.proc.popen.stdin.write((line + "\n").encode())
        self.proc.popen.stdin.flush()

    def line(self, pattern, timeout=60.0):
        return self.proc.wait_line(pattern, stream="stdout", timeout=timeout)

    def lines(self, pattern):
        return [l for l in list(self.proc.stdout_lines) if re.search(pattern, l)]

    def downloaded(self, name, timeout=120.0):
        m = self.line(r"^downloaded " + re.escape(name) +
                      r": (\d+) bytes, sha256 ([0-9a-f]{64}), (.*) -> (.*)$", timeout)
        return int(m.group(1)), m.group(2), m.group(3), m.group(4)

    def started(self, name):
        m = self.line(r"^download (\d+) " + re.escape(name) + r": (\d+) bytes(, resuming at offset (\d+))?")
        return int(m.group(1)), int(m.group(4) or 0)


def register(port, name):
    tx, rx = connect(port), connect(port)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    assert recv_until(tx) == b"REGISTERED TOSEND %s\n\n" % name
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    assert recv_until(rx) == b"REGISTERED TORECV %s\n\n" % name
    return tx, rx


def test_list_and_small_downloads(server, served, start, tmp_path):
    (served / "hello.txt").write_bytes(b"hello")
    (served / "empty").write_bytes(b"")
    (served / "my song.mp3").write_bytes(b"x" * 1000 + b"\x7f")
    (served / "subdir").mkdir()
    os.symlink("/etc/passwd", served / "link")
    os.mkfifo(served / "fifo")
    _, port = server()
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice")
    c.send("/files")
    c.line(r"^file: my song.mp3 \(1001 bytes\)")
    listed = c.lines(r"^file: ")
    # Only regular files: no symlink, FIFO or directory.
    assert listed == ["file: empty (0 bytes)", "file: hello.txt (5 bytes)",
                      "file: my song.mp3 (1001 bytes)"]
    c.send(f"/get hello.txt {out}")
    size, sha, last, path = c.downloaded("hello.txt")
    assert (size, sha) == (5, hashlib.sha256(b"hello").hexdigest())
    assert last == "last byte at offset 4 (0x6f)"
    assert (out / "hello.txt").read_bytes() == b"hello"
    c.send(f"/get empty {out}")
    size, sha, last, _ = c.downloaded("empty")
    assert size == 0 and sha == hashlib.sha256(b"").hexdigest() and "no last byte" in last
    assert (out / "empty").read_bytes() == b""
    c.send(f"/get my song.mp3 {out}")
    size, sha, last, _ = c.downloaded("my song.mp3")
    assert last == "last byte at offset 1000 (0x7f)"
    assert not list(out.glob("*.part*"))
    for bad in ("link", "fifo", "subdir", "nothere"):
        c.send(f"/get {bad} {out}")
        c.line(r"^! download of " + bad + r" failed: not found")
    assert sorted(p.name for p in out.iterdir()) == ["empty", "hello.txt", "my song.mp3"]


def test_confinement_answers_106_byte_for_byte(server, served, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    os.symlink(secret, served / "out")
    os.symlink("inside", served / "rel")
    (served / "inside").write_bytes(b"fine")
    os.symlink("/dev/zero", served / "zero")
    os.mkfifo(served / "pipe")
    _, port = server()
    tx, rx = register(port, b"mallory")
    for name in (b"../secret.txt", str(secret).encode(), b"/etc/passwd", b"out", b"rel",
                 b"zero", b"pipe", b".", b"..", b"nope"):
        tx.sendall(b"DOWNLOAD %s\nUdp-port: 40000\nOffset: 0\n\n" % name)
        assert recv_until(tx) == b"ERROR 106 No such file\n\n", name
    # Offset past the end: 108; a regular file: TRANSFER with its hash.
    tx.sendall(b"DOWNLOAD inside\nUdp-port: 40000\nOffset: 5\n\n")
    assert recv_until(tx) == b"ERROR 108 Bad request\n\n"
    tx.sendall(b"DOWNLOAD inside\nUdp-port: 40000\nOffset: 4\n\n")
    reply = recv_until(tx)
    assert re.fullmatch(rb"TRANSFER (\d+)\nSize: 4\nOffset: 4\nSha256: " +
                        hashlib.sha256(b"fine").hexdigest().encode() + rb"\nUdp-port: (\d+)\n\n", reply)
    tid = re.match(rb"TRANSFER (\d+)", reply).group(1)
    # Ids are per user; PAUSE/RESUME/CANCEL of it, then of a gone id.
    other_tx, _ = register(port, b"eve")
    other_tx.sendall(b"PAUSE %s\n\n" % tid)
    assert recv_until(other_tx) == b"ERROR 107 No such transfer\n\n"
    tx.sendall(b"PAUSE %s\n\n" % tid)
    assert recv_until(tx) == b"PAUSED %s\n\n" % tid
    tx.sendall(b"PAUSE %s\n\n" % tid)
    assert recv_until(tx) == b"PAUSED %s\n\n" % tid
    tx.sendall(b"RESUME %s\n\n" % tid)
    assert recv_until(tx) == b"RESUMED %s\n\n" % tid
    tx.sendall(b"CANCEL %s\n\n" % tid)
    assert recv_until(tx) == b"CANCELLED %s\n\n" % tid
    tx.sendall(b"RESUME %s\n\n" % tid)
    assert recv_until(tx) == b"ERROR 107 No such transfer\n\n"
    tx.sendall(b"LIST FILES\n\n")
    body = recv_until(tx, b"4 inside\n")
    assert body == b"FILES\nContent-length: 9\n\n4 inside\n"


def test_pause_resume_and_chat_during_download(server, served, start, tmp_path):
    write_random(served / "big.bin", 16 * MiB, "pause")
    _, port = server()
    out = tmp_path / "out"
    out.mkdir()
    bob = Client(start, port, "bob")
    c = Client(start, port, "alice", "--limit-rate", "2000000")
    c.send(f"/get big.bin {out}")
    tid, _ = c.started("big.bin")
    # One NAME.part, one download at a time.
    c.send(f"/get big.bin {out}")
    c.line(r"^! download of big.bin failed: .*is being downloaded already")
    c.send(f"/pause {tid}")
    c.line(rf"^paused {tid}$")
    c.send("/transfers")
    c.line(rf"^transfer {tid}: big.bin .*\(paused\)$")
    # Chat goes on during the download.
    c.send("@bob still here")
    bob.line(r"^alice: still here$")
    c.line(r"^delivered to bob$")
    c.send("/resume")
    c.line(rf"^resumed {tid}$")
    size, sha, last, _ = c.downloaded("big.bin")
    assert size == 16 * MiB and sha == sha256_of(served / "big.bin")
    assert sha256_of(out / "big.bin") == sha
    assert last == f"last byte at offset {16 * MiB - 1} (0x{(served / 'big.bin').read_bytes()[-1]:02x})"


def test_cancel_removes_the_part_file(server, served, start, tmp_path):
    write_random(served / "big.bin", 16 * MiB, "cancel")  # > the 4 MiB window
    srv, port = server()
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice", "--limit-rate", "1000000")
    c.send(f"/get big.bin {out}")
    tid, _ = c.started("big.bin")
    c.send("/cancel")
    c.line(rf"^cancelled {tid}$")
    c.line(r"^! download of big.bin failed: .*cancelled")
    srv.wait_line(rf"transfer {tid} (cancelled by alice|of big.bin to alice: transfer cancelled)")
    assert not (out / "big.bin").exists()
    assert not list(out.glob("big.bin.part*"))
    c.send(f"/pause {tid}")
    c.line(rf"^! pause {tid} failed: .*ERROR 107 No such transfer")


def killed_mid_download(start, port, out):
    """Starts a slow /get of big.bin and kills the client once 1 MiB is in
    the part file; returns the part file's path."""
    c = Client(start, port, "alice", "--limit-rate", "2000000")
    c.send(f"/get big.bin {out}")
    c.started("big.bin")
    part = out / "big.bin.part"
    wait_for(lambda: part.exists() and part.stat().st_size >= MiB, what="1 MiB in the part file")
    c.proc.popen.kill()
    c.proc.popen.wait(10)
    return part


def test_kill_client_then_resume(server, served, start, tmp_path):
    write_random(served / "big.bin", 16 * MiB, "resume")
    _, port = server()
    out = tmp_path / "out"
    out.mkdir()
    part = killed_mid_download(start, port, out)
    have = part.stat().st_size
    assert 0 < have < 16 * MiB and not (out / "big.bin").exists()
    c2 = Client(start, port, "alice2")
    c2.send(f"/get big.bin {out}")
    _, resumed_at = c2.started("big.bin")
    assert resumed_at == have
    size, sha, _, _ = c2.downloaded("big.bin")
    assert sha == sha256_of(served / "big.bin") == sha256_of(out / "big.bin")
    assert not part.exists() and not (out / "big.bin.part.sha256").exists()


def test_file_changed_between_resumes_starts_over(server, served, start, tmp_path):
    write_random(served / "big.bin", 16 * MiB, "v1")
    _, port = server()
    out = tmp_path / "out"
    out.mkdir()
    part = killed_mid_download(start, port, out)
    write_random(served / "big.bin", 16 * MiB, "v2")  # same size, other bytes
    c2 = Client(start, port, "alice2")
    c2.send(f"/get big.bin {out}")
    _, resumed_at = c2.started("big.bin")
    assert resumed_at == 0
    _, sha, _, _ = c2.downloaded("big.bin")
    assert sha == sha256_of(served / "big.bin") == sha256_of(out / "big.bin")


def test_server_killed_mid_transfer(server, served, start, tmp_path):
    write_random(served / "big.bin", 8 * MiB, "kill")
    srv, port = server()
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice", "--limit-rate", "1000000")
    c.send(f"/get big.bin {out}")
    c.started("big.bin")
    part = out / "big.bin.part"
    wait_for(lambda: part.exists() and part.stat().st_size > 0, what="bytes in the part file")
    srv.popen.kill()
    srv.popen.wait(10)
    c.line(r"^! download of big.bin interrupted at \d+ of 8388608 bytes")
    c.proc.wait_line(r"connection to the server lost")
    assert c.proc.popen.wait(20) == 1
    # Nothing half-written is presented as complete.
    assert not (out / "big.bin").exists()
    assert part.exists() and part.stat().st_size < 8 * MiB
    assert not c.lines(r"^downloaded ")


def test_three_clients_same_file_plus_another(server, served, start, tmp_path):
    write_random(served / "same.bin", 24 * MiB, "same")
    write_random(served / "other.bin", 12 * MiB, "other")
    srv, port = server()
    clients = []
    for name in ("alice", "bob", "carol", "dave"):
        d = tmp_path / name
        d.mkdir()
        clients.append((Client(start, port, name, "--limit-rate", "8000000"), d))
    for (c, d), f in zip(clients, ("same.bin", "same.bin", "same.bin", "other.bin")):
        c.send(f"/get {f} {d}")
    # All four run at once: each has started before any has finished.
    for (c, _), f in zip(clients, ("same.bin", "same.bin", "same.bin", "other.bin")):
        c.started(f)
    for (c, d), f in zip(clients, ("same.bin", "same.bin", "same.bin", "other.bin")):
        _, sha, _, _ = c.downloaded(f, timeout=180)
        assert sha == sha256_of(served / f) == sha256_of(d / f)


def test_transfer_limits_answer_busy(server, served, start, tmp_path):
    # Larger than the receiver's 4 MiB window: a file that fits in it can be
    # sent and acknowledged whole before the second /get arrives.
    write_random(served / "a.bin", 16 * MiB, "a")
    (served / "b.bin").write_bytes(b"b" * 100)
    _, port = server("--max-user-transfers", "1")
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice", "--limit-rate", "500000")
    c.send(f"/get a.bin {out}")
    tid, _ = c.started("a.bin")
    c.send(f"/get b.bin {out}")
    c.line(r"^! download of b.bin failed: .*(busy|overloaded)", timeout=30)
    # Another user is not bound by alice's limit.
    bob = Client(start, port, "bob")
    bob_out = tmp_path / "bob"
    bob_out.mkdir()
    bob.send(f"/get b.bin {bob_out}")
    bob.downloaded("b.bin")
    c.send(f"/cancel {tid}")
    c.line(rf"^cancelled {tid}$")


def sanitized(path):
    """True for an ASan build: its shadow memory and quarantine make RSS
    meaningless, and it runs ~5x slower."""
    with open(path, "rb") as f:
        return b"AddressSanitizer" in f.read()


def test_sparse_gigabyte_with_bounded_memory(server, served, start, tmp_path):
    asan = sanitized(binary("imrelay"))
    size_total = (64 << 20) if asan else (1 << 30)
    with open(served / "sparse.bin", "wb") as f:
        f.truncate(size_total)
        f.seek(size_total - 1)
        f.write(b"\x5a")
    srv, port = server()
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice")
    c.send(f"/get sparse.bin {out}")
    size, sha, last, _ = c.downloaded("sparse.bin", timeout=600)
    assert size == size_total
    assert last == f"last byte at offset {size_total - 1} (0x5a)"
    assert sha == sha256_of(out / "sparse.bin") == sha256_of(served / "sparse.bin")
    if asan:
        return  # the transfer is checked; memory is measured on the plain build
    client_kib = vm_hwm_kib(c.proc.popen.pid)
    server_kib = vm_hwm_kib(srv.popen.pid)
    assert client_kib < 64 * 1024, client_kib
    assert server_kib < 64 * 1024, server_kib


def test_paused_too_long_is_dropped(server, served, start, tmp_path):
    write_random(served / "big.bin", 16 * MiB, "paused")  # > the 4 MiB window
    srv, port = server("--paused-timeout", "0.5")
    out = tmp_path / "out"
    out.mkdir()
    c = Client(start, port, "alice", "--limit-rate", "500000")
    c.send(f"/get big.bin {out}")
    tid, _ = c.started("big.bin")
    c.send(f"/pause {tid}")
    c.line(rf"^paused {tid}$")
    srv.wait_line(rf"transfer {tid} paused too long: dropped", timeout=30)
    c.line(r"^! download of big.bin failed: .*cancelled")
    c.send(f"/resume {tid}")
    c.line(rf"^! resume {tid} failed: .*ERROR 107")
    # What arrived stays for a later resume.
    assert (out / "big.bin.part").exists() and not (out / "big.bin").exists()
    c.send(f"/get big.bin {out}")
    _, sha, _, _ = c.downloaded("big.bin")
    assert sha == sha256_of(served / "big.bin")


def test_vanished_client_costs_nothing_after_timeout(server, served):
    (served / "f.bin").write_bytes(b"z" * 100_000)
    srv, port = server("--transfer-timeout", "1")
    tx, rx = register(port, b"ghost")
    # A UDP port that never answers: the server hears no opening ACK.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    tx.sendall(b"DOWNLOAD f.bin\nUdp-port: %d\nOffset: 0\n\n" % silent.getsockname()[1])
    tid = re.match(rb"TRANSFER (\d+)", recv_until(tx)).group(1)
    srv.wait_line(rf"transfer {tid.decode()} of f.bin to ghost: .*(timeout|timed out)", timeout=30)
    tx.sendall(b"PAUSE %s\n\n" % tid)
    assert recv_until(tx) == b"ERROR 107 No such transfer\n\n"
    silent.close()
