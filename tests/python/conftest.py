"""Shared helpers for the Python suite. Run against the installed package:
scripts/test.sh installs bindings/python into a temporary venv first."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import improto

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0  # generous: the machine may be busy; a pass never waits this long


def pytest_report_header(config):
    return f"improto {improto.__version__} from {Path(improto.__file__).parent}"


def pytest_configure(config):
    # scripts/test.sh sets this: the suite must test what pip installed.
    if os.environ.get("IMPROTO_EXPECT_INSTALLED") == "1":
        where = Path(improto.__file__).resolve()
        if REPO / "bindings" in where.parents:
            raise pytest.UsageError(f"improto imported from the source tree ({where}), not installed")


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Reads exactly n bytes (fails on EOF)."""
    sock.settimeout(TIMEOUT)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def recv_until_close(sock: socket.socket) -> bytes:
    sock.settimeout(TIMEOUT)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def expect(sock: socket.socket, wanted: bytes) -> None:
    """Reads len(wanted) bytes and checks them."""
    assert recv_exactly(sock, len(wanted)) == wanted


def http_exchange(address, request: bytes) -> tuple:
    """One request on a fresh connection; returns (status line, body)."""
    with socket.create_connection(address, timeout=TIMEOUT) as s:
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            assert chunk, f"closed inside the head: {head!r}"
            head += chunk
        lines = head.decode().split("\r\n")
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        return lines[0], recv_exactly(s, length)


def wait_for(predicate, what: str, timeout: float = TIMEOUT):
    """Polls predicate() until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


LISTENING = re.compile(r"listening on (\S+):(\d+)$")


class Tool:
    """A server binary from $IMPROTO_BIN_DIR; stderr is drained on a thread
    (the servers log one line per event: a full pipe would stall them)."""

    def __init__(self, name, *args):
        bin_dir = os.environ.get("IMPROTO_BIN_DIR")
        if not bin_dir:
            pytest.skip("IMPROTO_BIN_DIR is not set (scripts/test.sh sets it to build/tools)")
        path = os.path.join(bin_dir, name)
        assert os.path.exists(path), f"{path} is missing: build the tools first"
        self.popen = subprocess.Popen([path, *map(str, args)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines = []
        self._cond = threading.Condition()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self):
        for raw in iter(self.popen.stderr.readline, b""):
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def listening(self, index=0):
        """(host, port) of the index-th 'listening on HOST:PORT' line."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                found = [m for m in map(LISTENING.search, self.lines) if m]
                if len(found) > index:
                    return found[index].group(1).strip("[]"), int(found[index].group(2))
                assert time.monotonic() < deadline and self.popen.poll() is None, \
                    f"no 'listening on' line: {self.lines!r}"
                self._cond.wait(0.1)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        assert self.popen.wait(TIMEOUT) == 0, self.lines
        self._pump.join(TIMEOUT)
