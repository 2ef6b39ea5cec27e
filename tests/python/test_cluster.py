"""The servers' cluster and PostgreSQL options from Python, against a real
nats-server (JetStream) and a throwaway PostgreSQL from tests/support:
two in-process relay nodes chatting across the cluster, a name held on one
node refused on the other, buddy SET on one node read by a GET on another,
the registry on PostgreSQL, and the options' checks.

Waits are for conditions (log lines, answers), bounded by SLACK for a
loaded machine; nothing depends on elapsed time.
"""

import os
import queue
import re
import sys
import threading
import time
from pathlib import Path

import pytest

import improto
import improto.aio
from improto import _core

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import postgres  # noqa: E402
from conftest import Tool  # noqa: E402
from nats_servers import NATS_SERVER, NatsSet  # noqa: E402

SLACK = 20.0
HEARTBEAT, NODE_TIMEOUT = 0.5, 4.0

# scripts/test.sh installs both: there a missing one fails the tests instead.
_SCRIPTED = os.environ.get("IMPROTO_EXPECT_INSTALLED") == "1"
needs_nats = pytest.mark.skipif(not Path(NATS_SERVER).exists() and not _SCRIPTED,
                                reason="nats-server is not installed (scripts/test.sh installs it)")
needs_postgresql = pytest.mark.skipif(not postgres.available() and not _SCRIPTED,
                                      reason="the PostgreSQL server is not installed")


class Log:
    """A server's log lines, for waiting on one (the `log=` callback)."""

    def __init__(self):
        self.lines = []
        self._cond = threading.Condition()

    def __call__(self, line):
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait(self, pattern, timeout=SLACK):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(re.search(pattern, line) for line in self.lines):
                left = deadline - time.monotonic()
                assert left > 0, f"no log line matching {pattern!r}: {self.lines[-20:]!r}"
                self._cond.wait(left)


def wait_for(predicate, what, timeout=SLACK):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def nats():
    with NatsSet().single() as n:
        yield n


pg, database = postgres.pytest_fixtures("py")


@pytest.fixture
def relay_nodes(nats):
    """relay_nodes(count) -> [(RelayServer, Log)], once every node has heard every other."""
    made = []

    def _nodes(count=2, **options):
        out = []
        for i in range(count):
            log = Log()
            server = improto.RelayServer(cluster=nats.urls(), node=f"py{i + 1}",
                                         heartbeat=HEARTBEAT, node_timeout=NODE_TIMEOUT,
                                         receiver_timeout=3.0, log=log, **options)
            made.append(server)
            out.append((server, log))
        for i, (_, log) in enumerate(out):
            for j in range(count):
                if j != i:
                    log.wait(rf"node py{j + 1} joined the cluster")
        return out

    yield _nodes
    for server in made:
        server.stop()


# ------------------------------------------------------------------- relay

@needs_nats
def test_two_relay_nodes_chat_across_the_cluster(relay_nodes):
    (a, _), (b, _) = relay_nodes(2)
    assert a.node == "py1" and b.node == "py2"
    # on_event: the reader threads answer RECEIVED while send() waits for SENT.
    got = {"alice": queue.Queue(), "bob": queue.Queue()}
    with improto.RelayClient("alice", port=a.port, timeout=SLACK, on_event=got["alice"].put) as alice, \
            improto.RelayClient("bob", port=b.port, timeout=SLACK, on_event=got["bob"].put) as bob:
        alice.send("bob", b"hello from node 1")  # returns once bob's client answered RECEIVED
        ev = got["bob"].get(timeout=SLACK)
        assert (ev.from_, ev.body) == ("alice", b"hello from node 1")
        bob.send("alice", "and back from node 2")
        ev = got["alice"].get(timeout=SLACK)
        assert (ev.from_, ev.body) == ("bob", b"and back from node 2")
        # The list is the union over the nodes, from either side.
        assert alice.list_users() == ["alice", "bob"] == bob.list_users()
        # Nobody holds the name anywhere: 102, as on one server.
        with pytest.raises(improto.RejectedError) as info:
            alice.send("nobody", b"x")
        assert info.value.code == 102
        # Each node holds one user, the cluster both.
        assert (a.user_count(), b.user_count()) == (1, 1)


@needs_nats
def test_presence_and_send_all_across_nodes_with_asyncio(relay_nodes):
    import asyncio

    (a, _), (b, _) = relay_nodes(2)

    async def main():
        watcher = await improto.aio.RelayClient.connect("watcher", port=a.port, timeout=SLACK)
        await watcher.subscribe_presence()
        carol = await improto.aio.RelayClient.connect("carol", port=b.port, timeout=SLACK)
        ev = await asyncio.wait_for(watcher.receive(), SLACK)
        assert isinstance(ev, improto.relay.Joined) and ev.user == "carol"
        sent = asyncio.ensure_future(watcher.send_all(b"to everyone"))
        ev = await asyncio.wait_for(carol.receive(), SLACK)
        assert (ev.from_, ev.body) == ("watcher", b"to everyone")
        await asyncio.wait_for(sent, SLACK)  # SENT ALL: the other node's user acknowledged
        await carol.close()
        ev = await asyncio.wait_for(watcher.receive(), SLACK)
        assert isinstance(ev, improto.relay.Left) and ev.user == "carol"
        await watcher.close()

    asyncio.run(main())


@needs_nats
def test_a_name_held_on_one_node_is_refused_on_the_other(relay_nodes):
    (a, _), (b, _) = relay_nodes(2)
    with improto.RelayClient("dana", port=a.port, timeout=SLACK):
        with pytest.raises(improto.NameTakenError) as info:
            improto.RelayClient("dana", port=b.port, timeout=SLACK).connect()
        assert info.value.code == 104
    # Closed on node 1: the name is free again, on node 2 too (once node 1's
    # delete of the key went through).
    with _connect_when_free("dana", b) as again:
        assert again.list_users() == ["dana"]


def _connect_when_free(name, server):
    def attempt():
        try:
            return improto.RelayClient(name, port=server.port, timeout=SLACK).connect()
        except improto.NameTakenError:
            return None
    return wait_for(attempt, f"{name!r} free on node {server.node}")


@needs_nats
def test_a_stopped_node_gives_its_names_back(relay_nodes):
    (a, _), (b, log_b) = relay_nodes(2)
    alice = improto.RelayClient("alice", port=a.port, timeout=SLACK).connect()
    a.stop()
    alice.close()
    # A clean stop says goodbye and deletes its own names: nobody waits
    # for the node timeout or sweeps them.
    log_b.wait(r"node py1 left the cluster")
    with _connect_when_free("alice", b) as again:
        assert again.list_users() == ["alice"]
    assert not any("node py1 is dead" in line for line in log_b.lines)


@needs_nats
def test_an_in_process_node_and_an_imrelayd_node_share_one_cluster(nats):
    tool = Tool("imrelayd", "--port", 0, "--cluster", nats.urls(), "--node", "tool1",
                "--heartbeat", HEARTBEAT, "--node-timeout", NODE_TIMEOUT)
    log = Log()
    try:
        with improto.RelayServer(cluster=nats.urls(), node="py1", heartbeat=HEARTBEAT,
                                 node_timeout=NODE_TIMEOUT, log=log) as node:
            log.wait(r"node tool1 joined the cluster")
            got = queue.Queue()
            with improto.RelayClient("alice", port=node.port, timeout=SLACK) as alice, \
                    improto.RelayClient("bob", port=tool.listening()[1], timeout=SLACK,
                                        on_event=got.put):
                alice.send("bob", b"from python to the tool's node")
                ev = got.get(timeout=SLACK)
                assert (ev.from_, ev.body) == ("alice", b"from python to the tool's node")
                assert alice.list_users() == ["alice", "bob"]
    finally:
        tool.stop()


@needs_nats
def test_cluster_options_are_checked(nats):
    with pytest.raises(improto.ConfigError, match="cluster and node go together"):
        improto.RelayServer(cluster=nats.urls())
    with pytest.raises(improto.ConfigError, match="cluster and node go together"):
        improto.RelayServer(node="a")
    with pytest.raises(improto.ConfigError, match="^invalid configuration: cluster: "):
        improto.RelayServer(cluster="http://127.0.0.1:1", node="a")
    with pytest.raises(improto.ConfigError, match="node_timeout: expected 3 heartbeats"):
        improto.RelayServer(cluster=nats.urls(), node="a", heartbeat=1, node_timeout=2)
    with pytest.raises(improto.ConfigError, match="heartbeat"):
        improto.RelayServer(cluster=nats.urls(), node="a", heartbeat=0)
    with pytest.raises(improto.ConfigError, match="kv_replicas"):
        improto.RelayServer(cluster=nats.urls(), node="a", kv_replicas=6)
    with pytest.raises(improto.ConfigError):
        improto.RelayServer(cluster=nats.urls(), node="bad name")
    with pytest.raises(TypeError):
        improto.RelayServer(cluster=4222, node="a")
    # Nobody listens there: the tools' "cannot join the cluster", as a TransportError.
    with pytest.raises(improto.TransportError, match="cannot join the cluster"):
        improto.RelayServer(cluster="nats://127.0.0.1:1", node="a")
    with pytest.raises(improto.TransportError, match="cannot share statuses"):
        improto.BuddyServer(status="nats://127.0.0.1:1")
    with pytest.raises(improto.ConfigError, match="status"):
        improto.BuddyServer(status="redis://127.0.0.1:1")
    # A list of URLs is the same as the comma-separated string.
    with improto.RelayServer(cluster=[s.url for s in nats.servers], node="listed") as r:
        assert r.node == "listed"


def test_builds_without_nats_or_libpq_say_so(monkeypatch):
    monkeypatch.setattr(_core, "HAS_NATS", False)
    monkeypatch.setattr(_core, "HAS_POSTGRESQL", False)
    with pytest.raises(improto.UnsupportedError, match="cluster: .*no cluster support.*libnats-dev"):
        improto.RelayServer(cluster="nats://127.0.0.1:4222", node="a")
    with pytest.raises(improto.UnsupportedError, match="status: .*libnats-dev"):
        improto.BuddyServer(status="nats://127.0.0.1:4222")
    with pytest.raises(improto.UnsupportedError, match="store: .*no PostgreSQL support.*libpq-dev"):
        improto.RegistryServer(store="postgresql://u@127.0.0.1:1/db")
    with pytest.raises(improto.UnsupportedError, match="libpq-dev"):
        improto.BuddyServer(store="postgres://u@127.0.0.1:1/db")
    assert issubclass(improto.UnsupportedError, improto.ConfigError)


@pytest.mark.skipif(not _SCRIPTED, reason="only scripts/test.sh promises libnats-dev and libpq-dev")
def test_the_test_scripts_build_has_cluster_and_postgresql_support():
    # Else every test of this file that needs them would be skipped or fail unseen.
    assert _core.HAS_NATS is True
    assert _core.HAS_POSTGRESQL is True


# ---------------------------------------------------- buddy and registry

@needs_nats
@needs_postgresql
def test_buddy_nodes_on_one_database_share_statuses_through_nats(nats, database):
    ttl = 300.0  # expiry itself is tested by tests/integration/test_cluster_buddy_status.py
    nodes = [improto.BuddyServer(store=database, status=nats.urls(), ttl=ttl, udp_rate=0)
             for _ in range(2)]
    try:
        a, b = nodes
        ca = improto.BuddyClient(a.host, tcp_port=a.port, udp_port=a.udp_port, timeout=SLACK)
        cb = improto.BuddyClient(b.host, tcp_port=b.port, udp_port=b.udp_port, timeout=SLACK)
        # Users and lists in the shared database: registered once, on either node.
        for user in ("alice", "bob"):
            ca.register(user)
        with pytest.raises(improto.RejectedError) as info:
            cb.register("alice")
        assert info.value.code == 203
        cb.add("alice", "bob")
        assert wait_for(lambda: _statuses(ca) == [("bob", OFFLINE, "0.0.0.0", 0)],
                        "node 1 seeing node 2's ADD")
        # SET on one node, GET on the other.
        ca.set_status("bob", True, 4000)
        assert wait_for(lambda: _statuses(cb) == [("bob", ONLINE, "127.0.0.1", 4000)],
                        "bob online on node 2")
        cb.set_status("bob", False, 4001)
        assert wait_for(lambda: _statuses(ca) == [("bob", OFFLINE, "127.0.0.1", 4001)],
                        "bob offline on node 1")
        ca.close()
        cb.close()
    finally:
        for n in nodes:
            n.stop()


ONLINE, OFFLINE = improto.buddy.Presence.ONLINE, improto.buddy.Presence.OFFLINE


def _statuses(client):
    return [(e.user, e.status, e.ip, e.port) for e in client.get("alice")]


@needs_postgresql
def test_registry_on_postgresql(database):
    with improto.RegistryServer(store=database) as server:
        with improto.RegistryClient(server.host, server.port, timeout=SLACK) as c:
            c.register("alice", "127.0.0.1", 4000)
            c.register("bob", "127.0.0.1", 4001)
            c.logout("bob", "127.0.0.1", 4001)
            assert [(e.user, e.port) for e in c.users()] == [("alice", 4000)]
    # A new server on the same database (another data_dir) has the list.
    with improto.RegistryServer(store=database) as server:
        assert server.user_count() == 1
        with improto.RegistryClient(server.host, server.port, timeout=SLACK) as c:
            assert [(e.user, e.host, e.port) for e in c.users()] == [("alice", "127.0.0.1", 4000)]


@needs_postgresql
def test_store_options_are_checked(pg):
    with pytest.raises(improto.ConfigError, match="store: expected a postgresql:// URL"):
        improto.RegistryServer(store="/tmp/registry.sqlite3")
    with pytest.raises(improto.ConfigError, match="store: expected a postgresql:// URL"):
        improto.BuddyServer(store="sqlite:///x")
    with pytest.raises(TypeError):
        improto.RegistryServer(store=5)
    # A database that does not exist: StorageError naming it, password hidden.
    bad = f"postgresql://postgres:secret@127.0.0.1:{pg.port}/no_such_db"
    with pytest.raises(improto.StorageError) as info:
        improto.RegistryServer(store=bad)
    assert "no_such_db" in str(info.value) and "secret" not in str(info.value)
