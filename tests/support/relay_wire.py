"""The relay's seed-003 bytes on raw sockets, for the relay tests
(tests/integration/test_relay.py, test_cluster_relay.py): register a user's
two sockets, build SEND and FORWARD, read LIST USERS."""

from raw_sockets import connect, recv_exactly, recv_until


def register(port, name, timeout=5.0):
    """Registers `name` on two raw sockets; returns (tosend, torecv). Keep
    both referenced: a collected socket closes and unregisters the user."""
    tx, rx = connect(port, timeout=timeout), connect(port, timeout=timeout)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    assert recv_until(tx) == b"REGISTERED TOSEND %s\n\n" % name
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    assert recv_until(rx) == b"REGISTERED TORECV %s\n\n" % name
    return tx, rx


def try_register(port, name, timeout=5.0):
    """REGISTER TOSEND on a fresh socket, whatever the answer: (reply, socket)."""
    s = connect(port, timeout=timeout)
    s.sendall(b"REGISTER TOSEND %s\n\n" % name)
    return recv_until(s), s


def send(to, body):
    return b"SEND %s\nContent-length: %d\n\n%s" % (to, len(body), body)


def forward(sender, body):
    return b"FORWARD %s\nContent-length: %d\n\n%s" % (sender, len(body), body)


def list_users(tx, after=None):
    """LIST USERS (from `after`) on a send socket: the names of the reply,
    sorted. Also proves that no reply was pending beyond those expected."""
    tx.sendall(b"LIST USERS\n\n" if after is None else b"LIST USERS\nAfter: %s\n\n" % after)
    head = recv_until(tx)
    assert head.startswith(b"USERS\n"), head
    length = int(head.split(b"Content-length: ")[1].split(b"\n")[0])
    return sorted(recv_exactly(tx, length).split(b"\n")[:-1]) if length else []
