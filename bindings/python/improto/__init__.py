"""improto: the libimproto instant-messaging protocols from Python.

The package wraps the C++ library (``improto._core``):

* sans-I/O codecs, one module per protocol - every message a class with its
  fields as attributes, keyword construction, ``==`` and the library's
  ``describe()`` text as ``repr()``; incremental decoders with
  ``feed(data) -> list`` and ``finish()``; ``encode(msg) -> bytes`` that
  refuses messages a peer would misread; ``parse_*`` for datagrams:

  - :mod:`improto.registry` - protocol 1: HTTP/1.1 requests and responses,
    ``name@host:port`` entries, REGISTER/LOGOUT bodies, user lists, peer
    datagrams;
  - :mod:`improto.buddy` - protocol 2: REG/ADD/DEL and their responses,
    UDP SET/GET and the GET reply, the direct chat;
  - :mod:`improto.relay` - protocols 3 and 4 (TCP): SEND/FORWARD, user and
    file lists, presence, download control;
  - :mod:`improto.transfer` - protocol 4 (UDP): DATA/ACK/FIN/ABORT;

* servers in-process, for tests and scripts: :class:`RegistryServer`
  (protocol 1, HTTP user registry), :class:`BuddyServer` (protocol 2, buddy
  lists and status), :class:`RelayServer` (protocol 3/4, relay chat); each
  listens on loopback on a free port by default and stops with ``stop()`` or
  at the end of a ``with`` block;
* blocking clients: :class:`RelayClient` (with file downloads:
  :meth:`RelayClient.download` -> :class:`Download`, progress as
  :class:`DownloadProgress`, the checked file as :class:`DownloadResult`),
  :class:`RegistryClient` with
  :class:`Peer` (seed-004 UDP messages), :class:`BuddyClient` with
  :class:`ChatSession` and :class:`ChatListener`; ``improto.aio`` has the
  same clients for asyncio;
* the exceptions: every error is an :class:`Error` with an ``errc`` name;
  :class:`ProtocolError` (``.code``: the wire code; from a decoder also
  ``.messages``, what it decoded before the error), :class:`TransportError`
  (an :class:`OSError`), :class:`TimeoutError`, :class:`StorageError`,
  :class:`ConfigError` (:class:`UnsupportedError`: an option this
  build cannot serve) and the rest.

Example::

    import socket, improto
    from improto import relay
    with improto.RelayServer() as server:
        s = socket.create_connection(server.address)
        s.sendall(relay.encode(relay.RegisterRequest(role=relay.Role.TO_SEND, user="alice")))
        decoder = relay.Decoder(relay.Direction.TO_CLIENT)
        print(decoder.feed(s.recv(100)))   # [registered role=TOSEND user="alice"]
"""

from ._errors import (
    AddressInUseError,
    CancelledError,
    ConfigError,
    ConnectionClosedError,
    Error,
    IntegrityError,
    NameTakenError,
    NotFoundError,
    OverloadedError,
    ProtocolError,
    RejectedError,
    StorageError,
    TimeoutError,
    TransportError,
    UnsupportedError,
    error_class,
)
from .servers import BuddyServer, RegistryServer, RelayServer
from . import buddy, registry, relay, transfer

# Clients (blocking; improto.aio has the asyncio ones).
from ._relay_client import Download, RelayClient
from ._downloads import DownloadProgress, DownloadResult
from ._registry_client import Peer, RegistryClient
from ._buddy_client import BuddyClient, ChatListener, ChatSession

__version__ = "0.1.0"

__all__ = [
    "Error",
    "ProtocolError",
    "RejectedError",
    "NameTakenError",
    "NotFoundError",
    "TransportError",
    "AddressInUseError",
    "ConnectionClosedError",
    "TimeoutError",
    "OverloadedError",
    "StorageError",
    "ConfigError",
    "UnsupportedError",
    "CancelledError",
    "IntegrityError",
    "error_class",
    "RegistryServer",
    "BuddyServer",
    "RelayServer",
    "registry",
    "buddy",
    "relay",
    "transfer",
    # clients
    "RelayClient",
    "Download",
    "DownloadProgress",
    "DownloadResult",
    "RegistryClient",
    "Peer",
    "BuddyClient",
    "ChatSession",
    "ChatListener",
]

# Show the public classes where users import them from (help(), repr, pickle).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
