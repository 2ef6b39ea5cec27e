"""improto.aio.RegistryClient and improto.aio.Peer."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Tuple

from .. import _exchanges as _ex
from .. import registry as _reg
from .._errors import AddressInUseError, ProtocolError
from .._exchanges import Request
from .._exchanges import as_bytes as _peer_bytes
from .._net import check_port, check_timeout, endpoint, transport_error
from .._registry_client import DEFAULT_REGISTRY_PORT, _address_of, _others
from ._stream import _request_once, _with_timeout

__all__ = ["RegistryClient", "Peer"]


class RegistryClient:
    """The asyncio registry client (protocol 1): the methods of
    :class:`improto.RegistryClient` as coroutines, one HTTP request per
    connection. ``RegistryClient(host, port, timeout)`` connects nothing
    until a call."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_REGISTRY_PORT,
                 timeout: Optional[float] = 10.0) -> None:
        self.host = host
        self.port = check_port(port)
        self.timeout = check_timeout(timeout)
        self._where = f"registry {endpoint(host, self.port)}"

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release (each call has its own connection)."""

    async def _request(self, request: Request, timeout: Optional[float]) -> Any:
        """One HTTP request on a fresh connection: the response."""
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        return await _request_once(self.host, self.port, "registry", _reg.ResponseDecoder(),
                                   self._where, request, timeout)

    async def register(self, user: str, host: str, port: int, timeout: Optional[float] = None) -> None:
        """Registers ``user@host:port``; NameTakenError (406) when taken."""
        await _ex.run_async(_ex.registry_command(_reg.CommandKind.REGISTER, user, host, port,
                                                 self.host, self._where),
                            lambda r: self._request(r, timeout))

    async def logout(self, user: str, host: str, port: int, timeout: Optional[float] = None) -> None:
        """Removes ``user@host:port``; NotFoundError (404) when no such entry."""
        await _ex.run_async(_ex.registry_command(_reg.CommandKind.LOGOUT, user, host, port,
                                                 self.host, self._where),
                            lambda r: self._request(r, timeout))

    async def users(self, timeout: Optional[float] = None) -> List[Any]:
        """The online users (``improto.registry.Entry``); [] when nobody is registered."""
        return await _ex.run_async(_ex.registry_users(self.host, self._where),
                                   lambda r: self._request(r, timeout))


class _Datagrams(asyncio.DatagramProtocol):
    """Received datagrams in a queue (with their source), errors kept."""

    def __init__(self) -> None:
        self.queue: "asyncio.Queue[Tuple[bytes, Any]]" = asyncio.Queue()
        self.error: Optional[Exception] = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.error = exc
        self.queue.put_nowait((b"", None))  # wakes a waiting receiver


class Peer:
    """The asyncio seed-004 peer: ``await Peer.open(name, host, port)``, then
    :meth:`send_to`, :meth:`broadcast` and ``await`` :meth:`receive`, as
    :class:`improto.Peer`."""

    def __init__(self, name: str, transport: asyncio.DatagramTransport, protocol: _Datagrams) -> None:
        self.name = name
        self._transport = transport
        self._protocol = protocol
        self.dropped = 0

    @classmethod
    async def open(cls, name: str, host: str = "127.0.0.1", port: int = 0) -> "Peer":
        """Binds a UDP socket at host:port (0: a free port)."""
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, not {type(name).__name__}")
        port = check_port(port, allow_zero=True)
        try:
            transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                _Datagrams, local_addr=(host, port))
        except OSError as exc:
            err = transport_error(exc, f"peer {name!r} at {endpoint(host, port)}", "binding")
            if exc.errno == 98:
                err = AddressInUseError(str(err), errc="address_in_use")
            raise err from exc
        return cls(name, transport, protocol)

    @property
    def address(self) -> Tuple[str, int]:
        addr = self._transport.get_extra_info("sockname")
        return (addr[0], addr[1])

    async def close(self) -> None:
        """Closes the socket. Idempotent."""
        self._transport.close()

    async def __aenter__(self) -> "Peer":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def send_to(self, target: Any, text: Any) -> None:
        """Sends ``name: text`` to an Entry or a (host, port) (never blocks)."""
        host, port = _address_of(target)
        self._transport.sendto(_reg.encode(_reg.PeerMessage(sender=self.name, text=_peer_bytes(text))),
                               (host, port))

    def broadcast(self, targets: Any, text: Any) -> int:
        """Sends to every entry but this peer's own; returns how many were sent."""
        count = 0
        for target in _others(targets, self.name, self.address):
            self.send_to(target, text)
            count += 1
        return count

    async def receive(self, timeout: Optional[float] = None) -> Tuple[str, bytes]:
        """The next ``(sender, text)``; other datagrams are counted in :attr:`dropped`."""
        where = f"peer {self.name!r}"

        async def next_one() -> Tuple[str, bytes]:
            while True:
                data, addr = await self._protocol.queue.get()
                if addr is None and self._protocol.error is not None:
                    exc, self._protocol.error = self._protocol.error, None
                    raise transport_error(exc, where, "waiting for a datagram")
                try:
                    message = _reg.parse_peer_message(data)
                except ProtocolError:
                    self.dropped += 1
                    continue
                return message.sender, message.text
        return await _with_timeout(next_one(), check_timeout(timeout), where, "waiting for a datagram")
