"""improto.aio: the asyncio clients, among them 200 relay clients in one
event loop exchanging messages through the in-process and the real relay."""

import asyncio
import collections
import random
import socket
import time

import pytest

import improto
import improto.aio
from improto import relay

from conftest import TIMEOUT
from test_clients_relay import RawServer, Tool, free_port, read_message

CLIENTS = 200
MESSAGES = 50       # per client: MESSAGES - 1 to random others, 1 to ALL
LONG = 300.0        # bounds only: a passing run never waits this long


@pytest.fixture(params=["inproc", "imrelayd"])
def server(request):
    # A generous receiver timeout: on a loaded machine the loop may take a
    # while to answer 10,000 FORWARDs, which must not turn into ERROR 102.
    if request.param == "inproc":
        with improto.RelayServer(receiver_timeout=LONG) as srv:
            yield srv.address
    else:
        tool = Tool("imrelayd", "--port", 0, "--receiver-timeout", int(LONG))
        try:
            yield tool.listening()
        finally:
            tool.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, LONG))


def test_two_clients(server):
    async def main():
        alice = await improto.aio.RelayClient.connect("alice", *server, timeout=TIMEOUT)
        async with await improto.aio.RelayClient.connect("bob", *server, timeout=TIMEOUT) as bob:
            await alice.subscribe_presence()
            recv = asyncio.ensure_future(bob.receive(TIMEOUT))
            await alice.send("bob", b"hello")
            assert await recv == relay.Forward(from_="alice", body=b"hello")
            assert await alice.list_users() == ["alice", "bob"]
            with pytest.raises(improto.ProtocolError) as info:
                await alice.send("nobody", "x")
            assert info.value.code == 102
            with pytest.raises(improto.NameTakenError):
                await improto.aio.RelayClient.connect("bob", *server, timeout=TIMEOUT)
        assert await alice.receive(TIMEOUT) == relay.Left(user="bob")
        await alice.unsubscribe_presence()
        assert [ev async for ev in alice.events(timeout=0.2)] == []
        await alice.close()
        with pytest.raises(improto.ConnectionClosedError):
            await alice.send("bob", b"x")
        assert alice.pending == 0
    run(main())


def test_many_clients_one_loop(server):
    """CLIENTS clients; each pipelines MESSAGES sends (to random others and
    one SEND ALL) while all of them consume their FORWARDs."""

    names = [f"u{i}" for i in range(CLIENTS)]
    rng = random.Random(9)
    plan = {n: [rng.choice([m for m in names if m != n]) for _ in range(MESSAGES - 1)] + ["ALL"]
            for n in names}
    for targets in plan.values():
        rng.shuffle(targets)

    async def main():
        before = asyncio.all_tasks()
        clients = {}
        for batch in range(0, CLIENTS, 50):  # connect in batches: a sane accept backlog
            made = await asyncio.gather(*(improto.aio.RelayClient.connect(n, *server, timeout=LONG)
                                          for n in names[batch:batch + 50]))
            clients.update(zip(names[batch:batch + 50], made))
        got = collections.defaultdict(list)

        async def consume(name):
            async for ev in clients[name].events():
                got[name].append((ev.from_, ev.body))

        consumers = [asyncio.ensure_future(consume(n)) for n in names]

        async def sender(name):
            c = clients[name]
            await asyncio.gather(*(c.send(to, f"{name}>{to}#{i}".encode()) if to != "ALL"
                                   else c.send_all(f"{name}>ALL#{i}".encode())
                                   for i, to in enumerate(plan[name])))

        start = time.monotonic()
        results = await asyncio.gather(*(sender(n) for n in names), return_exceptions=True)
        elapsed = time.monotonic() - start
        errors = [r for r in results if r is not None]
        assert not errors, errors[:3]
        assert all(c.pending == 0 for c in clients.values())
        for c in clients.values():
            await c.close()
        await asyncio.gather(*consumers)
        # Nothing left pending: every client's reply reader ended with close().
        assert asyncio.all_tasks() == before
        return got, elapsed

    got, elapsed = run(main())
    expected = collections.defaultdict(list)
    for sender_name, targets in plan.items():
        for i, to in enumerate(targets):
            if to == "ALL":
                for n in names:
                    if n != sender_name:
                        expected[n].append((sender_name, f"{sender_name}>ALL#{i}".encode()))
            else:
                expected[to].append((sender_name, f"{sender_name}>{to}#{i}".encode()))
    total = sum(len(v) for v in expected.values())
    print(f"{CLIENTS} clients, {CLIENTS * MESSAGES} SENDs, {total} deliveries in {elapsed:.1f} s")
    for n in names:
        # Exactly once: the same multiset, no loss, no duplicate.
        assert collections.Counter(got[n]) == collections.Counter(expected[n]), n
        # Per sender, pipelined unicasts arrive in the order they were sent.
        for s in names:
            mine = [b for f, b in got[n] if f == s and b"ALL" not in b]
            assert mine == [b for f, b in expected[n] if f == s and b"ALL" not in b]


def test_errors():
    async def main():
        port = free_port()
        with pytest.raises(improto.TransportError) as info:
            await improto.aio.RelayClient.connect("alice", "127.0.0.1", port, timeout=TIMEOUT)
        assert info.value.errc == "connection_refused" and f"127.0.0.1:{port}" in str(info.value)

        silent = RawServer(lambda conn: None)
        try:
            with pytest.raises(improto.TimeoutError) as info:
                await improto.aio.RelayClient.connect("alice", "127.0.0.1", silent.port, timeout=0.3)
            assert f"127.0.0.1:{silent.port}" in str(info.value)
        finally:
            silent.close()

        def half_reply(conn):
            request = read_message(conn)
            role = b"TOSEND" if b"TOSEND" in request else b"TORECV"
            conn.sendall(b"REGISTERED " + role + b" alice\n\n")
            if role == b"TOSEND":
                read_message(conn)
                conn.sendall(b"SENT b")
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        half = RawServer(half_reply)
        try:
            alice = await improto.aio.RelayClient.connect("alice", "127.0.0.1", half.port,
                                                          timeout=TIMEOUT)
            with pytest.raises(improto.ConnectionClosedError) as info:
                await alice.send("bob", b"x")
            assert "middle of a message" in str(info.value)
            with pytest.raises(improto.ConnectionClosedError):
                await alice.list_users()
            await alice.close()
        finally:
            half.close()

        with pytest.raises(improto.ConfigError):
            await improto.aio.RelayClient.connect("alice", port=0)
    run(main())


def test_timed_out_request_keeps_replies_in_order():
    async def main():
        with improto.RelayServer() as srv:
            alice = await improto.aio.RelayClient.connect("alice", *srv.address, timeout=TIMEOUT)
            bob = await improto.aio.RelayClient.connect("bob", *srv.address, timeout=TIMEOUT)
            with pytest.raises(improto.TimeoutError):
                await alice.send("bob", b"late", timeout=0.2)   # bob is not reading yet
            assert await bob.receive(TIMEOUT) == relay.Forward(from_="alice", body=b"late")
            assert await alice.list_users() == ["alice", "bob"]  # not the late SENT
            await alice.close()
            await bob.close()
    run(main())
