"""Real nats-server processes for the cluster tests: one server with
JetStream, or a cluster of three, in a temporary directory on ephemeral
loopback ports. Every server started is stopped (SIGTERM, then SIGKILL) and
its directory removed, whatever the test did.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(port, timeout):
    """Waits until the server answers a client's CONNECT with its INFO."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(4096).startswith(b"INFO"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


class NatsServer:
    def __init__(self, workdir, name, port, cluster_port=None, routes=()):
        self.name, self.port, self.workdir = name, port, Path(workdir)
        self.url = f"nats://127.0.0.1:{port}"
        store = self.workdir / f"js-{name}"
        store.mkdir(parents=True, exist_ok=True)
        conf = [
            f'server_name: "{name}"',
            'listen: "127.0.0.1:%d"' % port,
            'jetstream { store_dir: "%s" }' % store,
        ]
        if cluster_port:
            conf.append('cluster { name: "improto-test"\n listen: "127.0.0.1:%d"\n routes: [%s] }'
                        % (cluster_port, ", ".join(f'"nats-route://127.0.0.1:{r}"' for r in routes)))
        self.conf = self.workdir / f"{name}.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.log = open(self.workdir / f"{name}.log", "wb")
        self.popen = None
        self.start()

    def start(self):
        self.popen = subprocess.Popen([NATS_SERVER, "-c", str(self.conf)],
                                      stdout=self.log, stderr=subprocess.STDOUT)
        if not _ready(self.port, 20):
            self.stop()
            raise AssertionError(f"nats-server {self.name} did not start: "
                                 + (self.workdir / f"{self.name}.log").read_text(errors="replace"))

    def kill(self):
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self):
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


class NatsSet:
    """The servers of one test; urls() is what imrelayd --cluster takes.
    A context manager: ``with NatsSet().single() as nats:`` closes them."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="improto-nats-")
        self.servers = []

    def single(self):
        self.servers.append(NatsServer(self.dir, "n0", free_port()))
        return self

    def cluster(self, size=3):
        ports = [(free_port(), free_port()) for _ in range(size)]
        for i, (port, cport) in enumerate(ports):
            routes = [c for j, (_, c) in enumerate(ports) if j != i]
            self.servers.append(NatsServer(self.dir, f"n{i}", port, cport, routes))
        return self

    def urls(self):
        return ",".join(s.url for s in self.servers)

    def wait_jetstream(self, timeout=60):
        """A clustered JetStream answers once its meta leader is elected."""
        import json
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.servers[0].port), timeout=2) as s:
                    s.settimeout(2)
                    s.recv(4096)
                    s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                              b"SUB _INBOX.probe 1\r\nPUB $JS.API.INFO _INBOX.probe 0\r\n\r\nPING\r\n")
                    data = b""
                    while b"MSG _INBOX.probe" not in data or not data.endswith(b"\r\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                        if b"MSG _INBOX.probe" in data and b'"type"' in data:
                            break
                    if b'"memory"' in data or b'"storage"' in data:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("JetStream did not become available")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for s in self.servers:
            s.stop()
        for s in self.servers:
            s.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
