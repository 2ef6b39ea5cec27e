"""A throwaway PostgreSQL server for the tests.

initdb in a temporary directory (as the `postgres` user when run as root:
initdb refuses root), then `postgres` listening on an ephemeral loopback port
and a private unix-socket directory, trust authentication, UTF-8. It is
always stopped: by close() / the context manager, and by the kernel if the
test process dies first (the postmaster gets SIGQUIT when its parent goes).

As a script, runs a command with IMPROTO_TEST_POSTGRESQL set to the URL:
    python3 tests/support/postgres.py -- build/tests/test_store
"""

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

URL_ENV = "IMPROTO_TEST_POSTGRESQL"


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("the PostgreSQL server is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


def available():
    try:
        bindir()
        return True
    except RuntimeError:
        return False


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Runs in the child after it changed user (which clears the setting).
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


class PostgresServer:
    """start() / stop() (fast shutdown) / crash() (immediate, like a power cut
    for the clients) / restart(); the port stays the same across restarts."""

    def __init__(self):
        self.bin = bindir()
        self.tmp = tempfile.mkdtemp(prefix="improto-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.sockdir = os.path.join(self.tmp, "sock")
        self.logfile = os.path.join(self.tmp, "postgres.log")
        os.mkdir(self.sockdir)
        self.user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.user = pw
            for p in (self.tmp, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.port = _free_port()
        self.proc = None
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust",
                   "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])

    def _popen_args(self):
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, argv):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, **self._popen_args())
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stdout}")
        return r.stdout

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60):
        assert not self.running()
        log = open(self.logfile, "a")
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-k", self.sockdir,
             "-h", "127.0.0.1", "-p", str(self.port), "-c", "fsync=on",
             "-c", "max_connections=200", "-c", "log_min_messages=warning"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            **self._popen_args())
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited at start:\n" + self.log_tail())
            r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-d", "postgres", "-U", "postgres"])
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not accept connections in time:\n" +
                                   self.log_tail())
            time.sleep(0.05)

    def _signal_and_wait(self, sig, timeout=60):
        if not self.running():
            self.proc = None
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        """Fast shutdown: clients are disconnected, everything committed stays."""
        self._signal_and_wait(signal.SIGINT)

    def crash(self):
        """Immediate shutdown: no checkpoint; recovery replays the WAL at start."""
        self._signal_and_wait(signal.SIGQUIT)

    def restart(self):
        self.stop()
        self.start()

    def psql(self, sql, url=None):
        """Runs SQL with psql (in the database of `url`, else `postgres`); the
        rows, unaligned, '|' between columns."""
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-d", url or self.url, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr}")
        return r.stdout

    def create_database(self, name):
        """A fresh database on this server; its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def log_tail(self, n=30):
        try:
            with open(self.logfile) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


def pytest_fixtures(prefix):
    """The fixtures of a test module on PostgreSQL, to assign at its top
    level: `pg`, one throwaway server for the module, and `database`, a fresh
    database (named PREFIX_N) for each test, as its URL."""
    import itertools

    import pytest

    numbers = itertools.count(1)

    @pytest.fixture(scope="module")
    def pg():
        with PostgresServer() as server:
            yield server

    @pytest.fixture
    def database(pg):
        return pg.create_database(f"{prefix}_{next(numbers)}")

    return pg, database


def main(argv):
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    server = PostgresServer()
    try:
        server.start()
        env = dict(os.environ, **{URL_ENV: server.url})
        # The command's signals are its own; ours only stop the server.
        return subprocess.call(cmd, env=env)
    finally:
        server.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main(sys.argv))
