"""The blocking registry client (protocol 1, HTTP) and the seed-004 peer
(UDP datagrams ``sender: text`` between registered users)."""

from __future__ import annotations

import socket
import time
from typing import Any, Iterable, Iterator, List, Optional, Tuple, Union

from . import _exchanges as _ex
from . import registry as _reg
from ._errors import ProtocolError
from ._exchanges import Request, as_bytes as _as_bytes, http_error
from ._net import check_port, check_timeout, deadline_of, endpoint, request_once, transport_error

__all__ = ["RegistryClient", "Peer", "DEFAULT_REGISTRY_PORT", "http_error"]

DEFAULT_REGISTRY_PORT = 65432

Text = Union[bytes, bytearray, memoryview, str]


class RegistryClient:
    """A client of the user registry (protocol 1, seeds 000 and 004):
    REGISTER and LOGOUT of ``name@host:port`` entries, and the list of
    online users. Each call is one HTTP request on a fresh connection.

    Args:
        host, port: the registry server.
        timeout: seconds a call may take by default (``timeout=`` per call).

    Errors: :class:`improto.NameTakenError` (406), :class:`improto.NotFoundError`
    (404), :class:`improto.RejectedError` (403: a LOGOUT from another address),
    :class:`improto.OverloadedError` (503), :class:`improto.ProtocolError`
    (400: a bad name or address), each with ``.code`` the HTTP status;
    :class:`improto.TransportError` / :class:`improto.TimeoutError` naming host:port.

    Example::

        with improto.RegistryClient("127.0.0.1", 65432) as reg:
            reg.register("Ali", "127.0.0.1", 54321)
            print(reg.users())      # [entry name="Ali" host="127.0.0.1" port=54321]
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_REGISTRY_PORT,
                 timeout: Optional[float] = 10.0) -> None:
        self.host = host
        self.port = check_port(port)
        self.timeout = check_timeout(timeout)
        self._where = f"registry {endpoint(host, self.port)}"

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (each call has its own connection); for symmetry."""

    def __repr__(self) -> str:
        return f"<RegistryClient {endpoint(self.host, self.port)}>"

    def _request(self, request: Request, timeout: Optional[float]) -> Any:
        """One HTTP request on a fresh connection: the response."""
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        return request_once(self.host, self.port, "registry", _reg.ResponseDecoder(), self._where,
                            request, timeout)

    def register(self, user: str, host: str, port: int, timeout: Optional[float] = None) -> None:
        """Registers ``user@host:port``; NameTakenError (406) when the name is taken."""
        _ex.run(_ex.registry_command(_reg.CommandKind.REGISTER, user, host, port, self.host,
                                     self._where), lambda r: self._request(r, timeout))

    def logout(self, user: str, host: str, port: int, timeout: Optional[float] = None) -> None:
        """Removes ``user@host:port``; NotFoundError (404) when no such entry."""
        _ex.run(_ex.registry_command(_reg.CommandKind.LOGOUT, user, host, port, self.host,
                                     self._where), lambda r: self._request(r, timeout))

    def users(self, timeout: Optional[float] = None) -> List[Any]:
        """The online users (``improto.registry.Entry``: user, host, port), in
        registration order; [] when nobody is registered."""
        return _ex.run(_ex.registry_users(self.host, self._where), lambda r: self._request(r, timeout))


Address = Tuple[str, int]


def _address_of(target: Any) -> Address:
    if isinstance(target, tuple):
        return (str(target[0]), check_port(target[1]))
    host, port = getattr(target, "host", None), getattr(target, "port", None)
    if host is None or port is None:
        raise TypeError(f"expected an improto.registry.Entry or a (host, port) tuple, not {target!r}")
    return (host, check_port(port))


def _others(targets: Iterable[Any], name: str, own: Address) -> Iterator[Any]:
    """The broadcast's targets: every one but this peer's name and, for
    (host, port) tuples, but its own address."""
    for target in targets:
        if getattr(target, "user", None) != name and _address_of(target) != own:
            yield target


class Peer:
    """A seed-004 peer: one UDP socket on which it receives ``sender: text``
    datagrams from other users and sends its own.

    Args:
        name: this user's name (the ``sender`` of what it sends).
        host, port: the local address to bind (port 0: a free one); register
            :attr:`address` with the registry so that others find it.

    Example::

        with improto.Peer("Ali") as ali, improto.RegistryClient(port=p) as reg:
            reg.register("Ali", *ali.address)
            ali.broadcast(reg.users(), "Merhaba")
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, not {type(name).__name__}")
        self.name = name
        port = check_port(port, allow_zero=True)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            err = transport_error(exc, f"peer {name!r} at {endpoint(host, port)}", "binding")
            if exc.errno == 98:  # EADDRINUSE
                from ._errors import AddressInUseError
                err = AddressInUseError(str(err), errc="address_in_use")
            raise err from exc
        self.dropped = 0  # datagrams received that were not `sender: text`

    @property
    def address(self) -> Address:
        """``(host, port)`` the socket is bound to."""
        addr = self._sock.getsockname()
        return (addr[0], addr[1])

    def close(self) -> None:
        """Closes the socket. Idempotent."""
        self._sock.close()

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "closed" if self._sock.fileno() < 0 else endpoint(*self.address)
        return f"<Peer {self.name!r} {where}>"

    def send_to(self, target: Any, text: Text) -> None:
        """Sends one datagram ``name: text`` to an Entry or a (host, port)."""
        host, port = _address_of(target)
        data = _reg.encode(_reg.PeerMessage(sender=self.name, text=_as_bytes(text)))
        try:
            self._sock.sendto(data, (host, port))
        except OSError as exc:
            raise transport_error(exc, f"peer {endpoint(host, port)}", "sending a datagram") from exc

    def broadcast(self, targets: Iterable[Any], text: Text) -> int:
        """Sends ``text`` to every entry but this peer's own name (and, for
        (host, port) tuples, but its own address); returns how many were sent."""
        count = 0
        for target in _others(targets, self.name, self.address):
            self.send_to(target, text)
            count += 1
        return count

    def receive(self, timeout: Optional[float] = None) -> Tuple[str, bytes]:
        """The next datagram as ``(sender, text)``; datagrams that are not
        ``sender: text`` are counted in :attr:`dropped` and skipped. Raises
        :class:`improto.TimeoutError` after ``timeout`` seconds (None: waits
        until one comes)."""
        deadline = deadline_of(check_timeout(timeout))
        where = f"peer {self.name!r}"
        while True:
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._sock.settimeout(left)
                data = self._sock.recv(65536)
            except OSError as exc:
                raise transport_error(exc, f"{where} at {endpoint(*self.address)}",
                                      "waiting for a datagram") from exc
            try:
                message = _reg.parse_peer_message(data)
            except ProtocolError:
                self.dropped += 1
                continue
            return message.sender, message.text
