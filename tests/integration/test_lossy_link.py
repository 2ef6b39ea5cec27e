"""Protocol 4 downloads over a real lossy link (issue 10, item 7).

imrelayd --files runs in one network namespace, imrelay in another, joined
by a veth pair whose both ends drop 1 % or 5 % of the arriving packets at
random (nftables; tests/support/lossy_link.py). A 64 MiB download must end
with the right SHA-256, under NAME (the .part renamed), with nothing left
behind. No timing is asserted: the waits are only generous bounds."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Proc, binary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import lossy_link  # noqa: E402

MiB = 1 << 20
SIZE = 64 * MiB


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def lossy_available():
    reason = lossy_link.unavailable_reason()
    if reason:
        pytest.skip(f"no lossy link here: {reason}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("served")
    # Bytes that do not compress or repeat at any block size.
    with open(d / "big.bin", "wb") as f:
        for i in range(SIZE // MiB):
            f.write(hashlib.shake_256(b"lossy %d" % i).digest(MiB))
    return d


@pytest.fixture
def link(lossy_available):
    made = []

    def _link(loss):
        lk = lossy_link.LossyLink(loss).up()
        made.append(lk)
        return lk

    yield _link
    procs_left = []
    for lk in made:
        lk.down()
        procs_left.append(lk.exists())
    assert not any(procs_left), "a namespace outlived its test"


def in_ns(lk, side, name, *args, stdin=subprocess.DEVNULL):
    return Proc(lk.command(side, [binary(name), *args]), stdin=stdin)


@pytest.mark.parametrize("loss", [1, 5])
def test_64_mib_download_over_lossy_link(link, served, tmp_path, loss):
    lk = link(loss)
    out = tmp_path / "out"
    out.mkdir()
    srv = in_ns(lk, "a", "imrelayd", "--host", lk.addr("a"), "--port", "0", "--files", served)
    cli = None
    try:
        host, port = srv.listening(timeout=30)
        assert host == lk.addr("a")
        # A lost SYN costs a second or more: the connection may take a while.
        cli = in_ns(lk, "b", "imrelay", "alice", host, "--port", port, "--no-presence",
                    stdin=subprocess.PIPE)
        cli.wait_line(r"^connected as", stream="stdout", timeout=60)
        cli.popen.stdin.write(f"/get big.bin {out}\n".encode())
        cli.popen.stdin.flush()
        m = cli.wait_line(r"^(downloaded big\.bin: (\d+) bytes, sha256 ([0-9a-f]{64}), (.*) -> (.*)"
                          r"|! download of big\.bin .*)$", stream="stdout", timeout=900)
        assert m.group(2), f"the download failed: {m.group(0)}"
        expected = sha256_of(served / "big.bin")
        assert int(m.group(2)) == SIZE
        assert m.group(3) == expected
        last = (served / "big.bin").read_bytes()[-1]
        assert m.group(4) == f"last byte at offset {SIZE - 1} (0x{last:02x})"
        assert Path(m.group(5)) == out / "big.bin"
        assert sha256_of(out / "big.bin") == expected
        assert sorted(p.name for p in out.iterdir()) == ["big.bin"]  # no .part left
        # The link really lost packets: about loss % of the ~60,000 datagrams
        # and of the ACKs (a loose lower bound; chance alone cannot miss it).
        dropped = lk.dropped()
        assert dropped >= 100 * loss, f"only {dropped} packets dropped at {loss} %"
        srv.wait_line(r"transfer \d+ of big\.bin to alice: complete", timeout=60)
        cli.popen.stdin.write(b"/quit\n")
        cli.popen.stdin.flush()
        assert cli.popen.wait(60) == 0
    finally:
        if cli is not None and cli.popen.poll() is None:
            cli.stop()
        if srv.popen.poll() is None:
            assert srv.stop(timeout=30) == 0


def test_cleanup_removes_namespaces_and_processes(lossy_available):
    lk = lossy_link.LossyLink(3).up()
    try:
        assert lk.exists()
        # A process left running inside does not keep the namespace alive.
        sleeper = subprocess.Popen(lk.command("b", ["sleep", "600"]))
        out = subprocess.run(lk.command("a", ["ip", "-o", "addr", "show"]), capture_output=True,
                             text=True, check=True).stdout
        assert re.search(r"inet " + re.escape(lk.addr("a")) + r"/30", out)
        # The root namespace sees neither end of the veth pair.
        root = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                              check=True).stdout
        assert lk.dev["a"] not in root and lk.dev["b"] not in root
    finally:
        lk.down()
    assert sleeper.wait(10) != 0
    assert not lk.exists()


def test_leftovers_of_a_killed_run_are_removed(lossy_available):
    # A run killed with SIGKILL leaves its namespaces; the next run removes
    # them because their pid is gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"{lossy_link.PREFIX}{dead.pid}x0a"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        lossy_link.cleanup_stale()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert name not in listed.split()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
