"""Raw-socket helpers shared by the integration tests (tests/integration
re-exports them from its conftest) and the relay wire helpers."""

import socket


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
