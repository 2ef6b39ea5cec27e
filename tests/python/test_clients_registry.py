"""improto.RegistryClient and improto.Peer (seed 004: register, list, UDP
datagrams between peers), blocking and asyncio, against the in-process
RegistryServer and the real imregistryd."""

import asyncio
import socket

import pytest

import improto
import improto.aio

from conftest import TIMEOUT
from test_clients_relay import RawServer, Tool, free_port


@pytest.fixture(params=["inproc", "imregistryd"])
def server(request, tmp_path):
    if request.param == "inproc":
        with improto.RegistryServer() as srv:
            yield srv.address
    else:
        tool = Tool("imregistryd", "--port", 0, "--data", tmp_path)
        try:
            yield tool.listening()
        finally:
            tool.stop()


def names(entries):
    return [(e.user, e.host, e.port) for e in entries]


def test_register_list_logout(server):
    with improto.RegistryClient(*server, timeout=TIMEOUT) as reg:
        assert reg.users() == []
        reg.register("Ali", "127.0.0.1", 54321)
        reg.register("Veli", "127.0.0.1", 54322)
        assert names(reg.users()) == [("Ali", "127.0.0.1", 54321), ("Veli", "127.0.0.1", 54322)]
        with pytest.raises(improto.NameTakenError) as info:
            reg.register("Ali", "127.0.0.1", 1)
        assert info.value.code == 406 and f"{server[0]}:{server[1]}" in str(info.value)
        with pytest.raises(improto.NotFoundError) as info:
            reg.logout("Ali", "127.0.0.1", 1)
        assert info.value.code == 404
        reg.logout("Ali", "127.0.0.1", 54321)
        assert names(reg.users()) == [("Veli", "127.0.0.1", 54322)]
        with pytest.raises(improto.ProtocolError):
            reg.register("bad name", "127.0.0.1", 5)


def test_seed004_peers(server):
    """Peers register their UDP address and message each other, one datagram
    `sender: text` each, as seed 004's clients do; a raw socket speaks the
    same bytes."""
    with improto.RegistryClient(*server, timeout=TIMEOUT) as reg, \
            improto.Peer("Ali") as ali, improto.Peer("Veli") as veli, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(TIMEOUT)
        reg.register("Ali", *ali.address)
        reg.register("Veli", *veli.address)
        reg.register("Utku", *raw.getsockname())
        users = reg.users()
        assert ali.broadcast(users, "Merhaba") == 2         # not to Ali itself
        assert veli.receive(TIMEOUT) == ("Ali", b"Merhaba")
        assert raw.recvfrom(100) == (b"Ali: Merhaba", ali.address)
        # A raw seed client's datagram; garbage before it is skipped and counted.
        raw.sendto(b"no separator", ali.address)
        raw.sendto(b"Utku: re: time is 10:30: ok\n", ali.address)
        assert ali.receive(TIMEOUT) == ("Utku", b"re: time is 10:30: ok\n")
        assert ali.dropped == 1
        veli.send_to(("127.0.0.1", raw.getsockname()[1]), "\u00e7ok g\u00fczel".encode())
        assert raw.recv(100) == "Veli: \u00e7ok g\u00fczel".encode()
        with pytest.raises(improto.TimeoutError):
            ali.receive(0.05)
        reg.logout("Ali", *ali.address)
        assert [e.user for e in reg.users()] == ["Veli", "Utku"]


def test_asyncio_registry_and_peers(server):
    async def main():
        async with improto.aio.RegistryClient(*server, timeout=TIMEOUT) as reg:
            ali = await improto.aio.Peer.open("Ali")
            veli = await improto.aio.Peer.open("Veli")
            await reg.register("Ali", *ali.address)
            await reg.register("Veli", *veli.address)
            with pytest.raises(improto.NameTakenError):
                await reg.register("Veli", "127.0.0.1", 9)
            assert ali.broadcast(await reg.users(), b"hi") == 1
            assert await veli.receive(TIMEOUT) == ("Ali", b"hi")
            with pytest.raises(improto.TimeoutError):
                await veli.receive(0.05)
            await reg.logout("Ali", *ali.address)
            assert [e.user for e in await reg.users()] == ["Veli"]
            await ali.close()
            await veli.close()
    asyncio.run(main())


def test_errors():
    port = free_port()
    with pytest.raises(improto.TransportError) as info:
        improto.RegistryClient("127.0.0.1", port, timeout=TIMEOUT).users()
    assert info.value.errc == "connection_refused" and f"127.0.0.1:{port}" in str(info.value)

    def half(conn):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nAli@127.0.0.1:5,")
        conn.close()
    srv = RawServer(half)
    try:
        with pytest.raises(improto.ConnectionClosedError) as info:
            improto.RegistryClient("127.0.0.1", srv.port, timeout=TIMEOUT).users()
        assert "middle of a message" in str(info.value)
        with pytest.raises(improto.ConnectionClosedError):
            asyncio.run(improto.aio.RegistryClient("127.0.0.1", srv.port, timeout=TIMEOUT).users())
    finally:
        srv.close()

    silent = RawServer(lambda conn: None)
    try:
        with pytest.raises(improto.TimeoutError) as info:
            improto.RegistryClient("127.0.0.1", silent.port, timeout=0.2).users()
        assert f"127.0.0.1:{silent.port}" in str(info.value)
        with pytest.raises(improto.TimeoutError):
            asyncio.run(improto.aio.RegistryClient("127.0.0.1", silent.port, timeout=0.2).users())
    finally:
        silent.close()

    with improto.Peer("Ali") as ali:
        with pytest.raises(improto.AddressInUseError):
            improto.Peer("Veli", port=ali.address[1])
    with pytest.raises(improto.ConfigError):
        improto.RegistryClient(port=0)
