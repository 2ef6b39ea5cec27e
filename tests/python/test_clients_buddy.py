"""improto.BuddyClient, ChatSession and ChatListener (seed 002), blocking and
asyncio, against the in-process BuddyServer and the real imbuddyd."""

import asyncio
import socket
import threading

import pytest

import improto
import improto.aio
from improto import buddy

from conftest import TIMEOUT
from test_clients_relay import RawServer, Tool, free_port


@pytest.fixture(params=["inproc", "imbuddyd"])
def server(request, tmp_path):
    """(host, tcp_port, udp_port)."""
    if request.param == "inproc":
        with improto.BuddyServer() as srv:
            yield srv.host, srv.port, srv.udp_port
    else:
        tool = Tool("imbuddyd", "--tcp-port", 0, "--udp-port", 0, "--data", tmp_path)
        try:
            host, tcp = tool.listening(0)
            yield host, tcp, tool.listening(1)[1]
        finally:
            tool.stop()


def test_requests_and_status(server):
    with improto.BuddyClient(*server, timeout=TIMEOUT) as b:
        b.register("alice")
        b.register("bob")
        with pytest.raises(improto.NameTakenError) as info:
            b.register("alice")
        assert info.value.code == 203 and f"{server[0]}:{server[1]}" in str(info.value)
        with pytest.raises(improto.NotFoundError) as info:
            b.add("alice", "nobody")
        assert info.value.code == 202
        b.add("alice", "bob")
        [entry] = b.get("alice")
        assert (entry.user, entry.status, entry.port) == ("bob", buddy.Presence.OFFLINE, 0)
        b.set_status("bob", True, 4000)
        # SET has no answer: the GET after it shows it (UDP on loopback keeps order).
        [entry] = b.get("alice")
        assert (entry.user, entry.status, entry.ip, entry.port) == \
            ("bob", buddy.Presence.ONLINE, "127.0.0.1", 4000)
        with pytest.raises(improto.NotFoundError):
            b.get("nobody")
        b.delete("alice", "bob")
        assert b.get("alice") == []


def test_chat_and_busy(server):
    with improto.BuddyClient(*server, timeout=TIMEOUT) as b, \
            improto.ChatListener(timeout=TIMEOUT) as bob_listens:
        b.register("alice")
        b.register("bob")
        b.add("alice", "bob")
        b.set_status("bob", True, bob_listens.port)
        [bob] = b.get("alice")
        assert bob.port == bob_listens.port
        with b.chat(bob.ip, bob.port, "alice") as chat:
            incoming = bob_listens.accept(TIMEOUT)
            assert incoming.peer == "alice"
            chat.send_line("hello bob")
            assert incoming.receive(TIMEOUT) == b"hello bob"
            incoming.send_line("hi alice")
            assert chat.receive(TIMEOUT) == b"hi alice"
            # A second caller while the chat is on: BUSY.
            with b.chat(bob.ip, bob.port, "carol") as other:
                with pytest.raises(improto.RejectedError, match="busy"):
                    other.receive(TIMEOUT)
            assert bob_listens.busy_answered == 1
            with pytest.raises(improto.ProtocolError):
                chat.send_line("two\nlines")
        # alice's close sent q: bob's side ends.
        assert incoming.receive(TIMEOUT) is None and incoming.ended
        incoming.close()
        # Free again: the next caller is taken, a raw one speaks the seed's bytes.
        with socket.create_connection(bob_listens.address, timeout=TIMEOUT) as raw:
            raw.sendall(b"CHAT dave\nfirst line\n")
            session = bob_listens.accept(TIMEOUT)
            assert session.peer == "dave"
            assert session.receive(TIMEOUT) == b"first line"
            session.send_line("ok")
            assert raw.recv(100) == b"ok\n"
            raw.sendall(b"last\nq\n")
            assert list(session) == [b"last"]
            session.close()


def test_asyncio_buddy(server):
    async def main():
        async with improto.aio.BuddyClient(*server, timeout=TIMEOUT) as b:
            await b.register("alice")
            await b.register("bob")
            with pytest.raises(improto.NameTakenError):
                await b.register("bob")
            await b.add("alice", "bob")
            listener = await improto.aio.ChatListener.start()
            await b.set_status("bob", True, listener.port)
            [bob] = await b.get("alice")
            assert (bob.status, bob.port) == (buddy.Presence.ONLINE, listener.port)
            chat = await b.chat(bob.ip, bob.port, "alice")
            incoming = await listener.accept(TIMEOUT)
            assert incoming.peer == "alice"
            await chat.send_line("hello")
            assert await incoming.receive(TIMEOUT) == b"hello"
            busy = await b.chat(bob.ip, bob.port, "carol")
            with pytest.raises(improto.RejectedError):
                await busy.receive(TIMEOUT)
            await busy.close()
            await incoming.send_line("bye")
            await incoming.close()
            assert [line async for line in chat] == [b"bye"]
            await chat.close()
            await listener.close()
            with pytest.raises(improto.NotFoundError):
                await b.get("nobody")
    asyncio.run(main())


def test_errors():
    port = free_port()
    with pytest.raises(improto.TransportError) as info:
        improto.BuddyClient("127.0.0.1", port, port, timeout=TIMEOUT).register("alice")
    assert info.value.errc == "connection_refused" and f"127.0.0.1:{port}" in str(info.value)

    # GET to a UDP port where nobody answers: TimeoutError after the retries
    # (or the refusal the kernel reports for a closed port).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        mute.settimeout(TIMEOUT)
        got = []
        t = threading.Thread(target=lambda: got.extend(mute.recvfrom(100) for _ in range(3)))
        t.start()
        with pytest.raises(improto.TimeoutError) as info:
            improto.BuddyClient("127.0.0.1", 1, mute.getsockname()[1], timeout=0.3).get("alice")
        t.join(TIMEOUT)
        assert [d for d, _ in got] == [b"GET alice"] * 3
        assert "3 attempts" in str(info.value)

    def half(conn):
        conn.recv(100)
        conn.sendall(b"200 O")
        conn.close()
    srv = RawServer(half)
    try:
        with pytest.raises(improto.ConnectionClosedError):
            improto.BuddyClient("127.0.0.1", srv.port, 1, timeout=TIMEOUT).register("alice")
    finally:
        srv.close()

    with improto.ChatListener() as listener:
        with pytest.raises(improto.AddressInUseError):
            improto.ChatListener(port=listener.port)
        with pytest.raises(improto.TimeoutError):
            listener.accept(0.05)
