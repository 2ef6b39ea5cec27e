"""improto: the libimproto instant-messaging protocols from Python.

The package wraps the C++ library (``improto._core``):

* servers in-process, for tests and scripts: :class:`RegistryServer`
  (protocol 1, HTTP user registry), :class:`BuddyServer` (protocol 2, buddy
  lists and status), :class:`RelayServer` (protocol 3/4, relay chat); each
  listens on loopback on a free port by default and stops with ``stop()`` or
  at the end of a ``with`` block;
* blocking clients: :class:`RelayClient`, :class:`RegistryClient` with
  :class:`Peer` (seed-004 UDP messages), :class:`BuddyClient` with
  :class:`ChatSession` and :class:`ChatListener`; ``improto.aio`` has the
  same clients for asyncio;
* the exceptions: every error is an :class:`Error` with an ``errc`` name;
  :class:`ProtocolError` (``.code``: the wire code), :class:`TransportError`
  (an :class:`OSError`), :class:`TimeoutError`, :class:`StorageError`,
  :class:`ConfigError` and the rest.

Example::

    import socket, improto
    with improto.RelayServer() as relay:
        s = socket.create_connection(relay.address)
        s.sendall(b"REGISTER TOSEND alice\\n\\n")
        print(s.recv(100))   # b'REGISTERED TOSEND alice\\n\\n'
"""

from ._errors import (
    AddressInUseError,
    ConfigError,
    ConnectionClosedError,
    Error,
    NameTakenError,
    NotFoundError,
    OverloadedError,
    ProtocolError,
    RejectedError,
    StorageError,
    TimeoutError,
    TransportError,
    error_class,
)
from .servers import BuddyServer, RegistryServer, RelayServer
from . import relay

# Clients (blocking; improto.aio has the asyncio ones).
from ._relay_client import RelayClient

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
    "error_class",
    "RegistryServer",
    "BuddyServer",
    "RelayServer",
    "relay",
    # clients
    "RelayClient",
]

# Show the public classes where users import them from (help(), repr, pickle).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
