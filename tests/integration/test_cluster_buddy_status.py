"""imbuddyd --status nats://...: two nodes share SET statuses through a
JetStream KV bucket (a real nats-server), so a SET on one node is what a GET
on the other answers, until the status TTL runs out. Each node here has its
own SQLite store, so the users are registered on both (with a shared
PostgreSQL store, once, on either).
"""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from nats_servers import NatsSet  # noqa: E402
from test_buddy_server import OK, buddyd, request, set_status, udp, wait_for  # noqa: E402,F401

TTL = 2.0
SLACK = 15.0  # waits for conditions allow this much on a loaded machine


@pytest.fixture
def nats_one():
    with NatsSet().single() as n:
        yield n


def test_set_on_one_node_get_on_another_until_the_ttl(buddyd, nats_one, tmp_path):
    nodes = [buddyd("--status", nats_one.urls(), "--ttl", TTL, data=tmp_path / f"d{i}")
             for i in range(2)]
    for srv in nodes:
        for u in (b"alice", b"bob", b"carol"):
            assert request(srv.tcp, b"REG %s\n" % u) == OK
        assert request(srv.tcp, b"ADD alice bob\n") == OK
        assert request(srv.tcp, b"ADD alice carol\n") == OK
    a, b = nodes
    never = b"bob 101 0.0.0.0 0\ncarol 101 0.0.0.0 0\n"
    assert udp(b.udp, b"GET alice") == never
    before_set = time.monotonic()
    set_status(a.udp, b"bob", b"100", 4000)
    online = b"bob 100 127.0.0.1 4000\ncarol 101 0.0.0.0 0\n"
    # The other node answers alike once the bucket has told it.
    assert wait_for(lambda: udp(b.udp, b"GET alice") == online, SLACK)
    assert udp(a.udp, b"GET alice") == online
    # An OFFLINE on the second node reaches the first.
    set_status(b.udp, b"carol", b"101", 4100)
    assert wait_for(lambda: udp(a.udp, b"GET alice") ==
                    b"bob 100 127.0.0.1 4000\ncarol 101 127.0.0.1 4100\n", SLACK)
    # Not refreshed: OFFLINE on both nodes after the TTL (counted from the SET).
    expired = b"bob 101 127.0.0.1 4000\ncarol 101 127.0.0.1 4100\n"
    assert wait_for(lambda: udp(b.udp, b"GET alice") == expired, TTL + SLACK)
    assert time.monotonic() - before_set >= TTL  # never before the TTL
    assert udp(a.udp, b"GET alice") == expired
    # A refresh on the second node brings it back on both.
    set_status(b.udp, b"bob", b"100", 4001)
    assert wait_for(lambda: udp(a.udp, b"GET alice") ==
                    b"bob 100 127.0.0.1 4001\ncarol 101 127.0.0.1 4100\n", SLACK)


def test_status_flag_is_checked(start):
    p = start("imbuddyd", "--tcp-port", 0, "--udp-port", 0, "--status", "redis://x")
    assert p.popen.wait(10) == 2
    p = start("imbuddyd", "--tcp-port", 0, "--udp-port", 0, "--status", "nats://127.0.0.1:1")
    assert p.popen.wait(30) == 1
    p.wait_line(r"cannot share statuses")
