"""SIGTERM at any moment after a server announces itself stops it cleanly.

A server that prints 'listening on' before it handles SIGTERM dies of the
signal when one arrives in that window, which is exactly when a supervisor
or a test that has just seen the line is likely to send it.
"""

import signal
import subprocess

import pytest

from conftest import binary

STARTS = 50

SERVERS = {
    "imregistryd": ["--port", "0", "--data", "{data}"],
    "imbuddyd": ["--tcp-port", "0", "--udp-port", "0", "--data", "{data}"],
    "imrelayd": ["--port", "0"],
}


def start_and_terminate(args):
    """Starts a server, sends SIGTERM as soon as the first 'listening on'
    line is read, and returns (exit status, everything it logged)."""
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    logged = []
    try:
        # Read on this thread, so the signal follows the line as closely as
        # the scheduler allows.
        for raw in iter(p.stderr.readline, b""):
            logged.append(raw.decode(errors="replace").rstrip("\n"))
            if "listening on " in logged[-1]:
                p.send_signal(signal.SIGTERM)
                break
        _, rest = p.communicate(timeout=20)
        logged += rest.decode(errors="replace").splitlines()
        return p.returncode, logged
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_sigterm_right_after_listening_exits_cleanly(server, tmp_path):
    args = [binary(server)] + [a.format(data=tmp_path) for a in SERVERS[server]]
    failures = []
    for i in range(STARTS):
        code, logged = start_and_terminate(args)
        if code != 0 or not any("listening on " in line for line in logged):
            failures.append((i, code, logged))
    assert not failures, (
        f"{server}: {len(failures)} of {STARTS} starts did not exit 0 after SIGTERM; "
        f"first: start {failures[0][0]}, status {failures[0][1]}, log {failures[0][2]!r}")
