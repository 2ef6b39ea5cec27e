"""Raw-socket helpers shared by the integration tests (tests/integration
re-exports them from its conftest) and the relay wire helpers."""

import socket
import threading
import time


def connect(port, host="127.0.0.1", timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {n} bytes: {data!r}")
        data += chunk
    return data


def recv_until(sock, terminator=b"\n\n", limit=1 << 20):
    data = b""
    while not data.endswith(terminator):
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed before {terminator!r}: {data!r}")
        data += chunk
        if len(data) > limit:
            raise AssertionError("no terminator within limit")
    return data


def closed_by_peer(sock, timeout=5.0):
    """True when the peer closes (EOF or reset) within timeout."""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class CloseWatch:
    """Notes when the peer closes `sock` (EOF or reset), on a thread of its
    own, so that a test may talk to others meanwhile and still learn when
    the server dropped this one, however long its own exchanges took on a
    loaded machine. Bytes received before the close are kept in `data`."""

    def __init__(self, sock, timeout=30.0):
        self.at = None
        self.data = b""
        self._sock = sock
        sock.settimeout(timeout)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        try:
            while True:
                chunk = self._sock.recv(4096)
                if not chunk:
                    break
                self.data += chunk
        except ConnectionResetError:
            pass
        except OSError:  # timed out: `at` stays None
            return
        self.at = time.monotonic()

    def closed(self):
        """True when the peer has closed the socket already."""
        return self.at is not None

    def wait(self, timeout=30.0):
        """The monotonic time of the close; fails if none came within timeout."""
        self._thread.join(timeout)
        assert self.at is not None, f"not closed by the peer within {timeout} s"
        return self.at


def wait_until_read_by_peer(sock, timeout=30.0):
    """Waits until the peer (a local server) has read every byte sent on
    `sock`: the receive queue of its end in /proc/net/tcp is empty. A
    condition to wait for instead of sleeping when a test must know that
    the server has its request (IPv4 loopback sockets only)."""
    ours = "%08X:%04X" % (0x0100007F, sock.getsockname()[1])
    theirs = "%08X:%04X" % (0x0100007F, sock.getpeername()[1])
    deadline = time.monotonic() + timeout
    while True:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == theirs and fields[2] == ours:
                    if int(fields[4].split(":")[1], 16) == 0:
                        return
                    break
        assert time.monotonic() < deadline, f"the peer did not read within {timeout} s"
        time.sleep(0.01)
