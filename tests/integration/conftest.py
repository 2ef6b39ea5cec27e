"""Fixtures for integration tests: start the real tool binaries on ephemeral
loopback ports and talk to them with raw sockets or through pipes.

The binaries come from $IMPROTO_BIN_DIR (ctest sets it to the build's tools/
folder). Every process a test starts is stopped by the fixture, with SIGTERM
first, so shutdown paths are exercised too.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
# Re-exported: the test files import them from here.
from raw_sockets import CloseWatch, closed_by_peer, connect, recv_exactly, recv_until  # noqa: E402,F401

# Waits below are for conditions and end as soon as they hold; their bounds
# only decide how long a failing run waits. They are generous because the
# suite also runs under ASan (whose leak check at exit scans the heap) on a
# shared, loaded machine: an ASan imrelayd holding 2,000 connections once
# needed more than 10 s to exit after SIGTERM there.
BIN_DIR = Path(os.environ.get("IMPROTO_BIN_DIR", Path(__file__).resolve().parents[2] / "build" / "tools"))
LISTENING = re.compile(r"listening on (\S+):(\d+)$")


def binary(name):
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build the project first (or set IMPROTO_BIN_DIR)")
    return str(path)


class _Popen(subprocess.Popen):
    """A Popen whose wait() also waits for the output pumps, so a test that
    reads stderr_lines right after the exit sees every line."""

    pumps = ()

    def wait(self, timeout=None):
        code = super().wait(timeout)
        for t in self.pumps:
            t.join(timeout if timeout is not None else 5.0)
        return code


class Proc:
    """A running tool; stderr is collected line by line on a thread."""

    def __init__(self, args, stdin=subprocess.DEVNULL, cwd=None):
        self.args = args
        self.popen = _Popen(
            args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        self.stderr_lines = []
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.stdout_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.popen.pumps = self._threads

    def _pump(self, stream, sink):
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern, stream="stderr", timeout=30.0):
        """Returns the first match of `pattern` in the stream's lines."""
        regex = re.compile(pattern)
        lines = self.stderr_lines if stream == "stderr" else self.stdout_lines
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in lines:
                    m = regex.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not any(t.is_alive() for t in self._threads)):
                    raise AssertionError(
                        f"{self.args[0]}: no line matching {pattern!r} in {stream}; "
                        f"stdout={self.stdout_lines!r} stderr={self.stderr_lines!r}")
                self._cond.wait(min(left, 0.1))

    def listening(self, index=0, timeout=30.0):
        """(host, port) of the index-th 'listening on HOST:PORT' line."""
        deadline = time.monotonic() + timeout
        while True:
            found = [LISTENING.search(line) for line in list(self.stderr_lines)]
            found = [m for m in found if m]
            if len(found) > index:
                host = found[index].group(1).strip("[]")
                return host, int(found[index].group(2))
            if time.monotonic() > deadline or self.popen.poll() is not None:
                raise AssertionError(f"{self.args[0]} did not report listening: {self.stderr_lines!r}")
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        """Signals the process and returns its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise AssertionError(f"{self.args[0]} did not exit within {timeout}s of {sig!r}")
        for t in self._threads:
            t.join(2)
        return code


@pytest.fixture
def start():
    """start(name, *args, stdin=..., cwd=...) -> Proc; all are stopped after the test."""
    procs = []

    def _start(name, *args, stdin=subprocess.DEVNULL, cwd=None):
        p = Proc([binary(name), *map(str, args)], stdin=stdin, cwd=cwd)
        procs.append(p)
        return p

    yield _start
    for p in procs:
        if p.popen.poll() is None:
            p.stop()
