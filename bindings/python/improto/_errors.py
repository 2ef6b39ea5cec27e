"""The exceptions of the improto package.

Every error the library reports is an :class:`Error`; its ``errc`` attribute
is the stable name of the C++ ``improto::errc`` (``"line_too_long"``,
``"address_in_use"``, ...), and the class says what kind of error it is:

* :class:`ProtocolError` - bytes that break a protocol's rules, or a peer
  that answered with an error code (``.code``: the wire code, e.g. 406 or 102).
* :class:`TransportError` - the network: refused, closed, address in use,
  timeouts (also :class:`OSError`, like socket errors).
* :class:`StorageError`, :class:`OverloadedError`, :class:`ConfigError`.
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

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
]


class Error(Exception):
    """Base class of every improto error.

    Attributes:
        errc: the stable name of the error condition (``improto::errc``),
            e.g. ``"line_too_long"``; ``None`` when raised from Python code.
        detail: what exactly was wrong (may be empty).
        code: the protocol's wire code that came with the error (e.g. 102
            for relay ``ERROR 102``, 406 for HTTP), or ``None``.
    """

    errc: Optional[str]
    detail: str
    code: Optional[int]

    def __init__(
        self,
        message: str,
        *,
        errc: Optional[str] = None,
        detail: str = "",
        code: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.errc = errc
        self.detail = detail
        self.code = code

    @property
    def message(self) -> str:
        """The one-sentence description, e.g. ``"line too long: line exceeds 8192 bytes"``."""
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = f", code={self.code}" if self.code is not None else ""
        return f"{type(self).__name__}({self.message!r}, errc={self.errc!r}{extra})"

    def __reduce__(self):  # keyword-only fields: pickle them explicitly
        return (_rebuild, (type(self), self.message, self.errc, self.detail, self.code))


def _rebuild(cls: Type[Error], message: str, errc: Optional[str], detail: str,
             code: Optional[int]) -> Error:
    return cls(message, errc=errc, detail=detail, code=code)


class ProtocolError(Error, ValueError):
    """Bytes that break a protocol's rules (framing or grammar), in either direction.

    ``code`` is the wire error code where there is one (the code a peer
    answered with, or the code a server answers such input with); ``errc``
    names the condition, e.g. ``"body_too_large"`` or ``"unknown_command"``.
    """


class RejectedError(ProtocolError):
    """The peer understood the request and refused it with an error code (``.code``)."""


class NameTakenError(RejectedError):
    """The name is already registered (relay ERROR 104, buddy 203, HTTP 406)."""


class NotFoundError(RejectedError):
    """No such user or entry (buddy 202 NO SUCH USER, HTTP 404)."""


class TransportError(Error, OSError):
    """The network failed: connection refused, reset or closed, address in use, I/O error.

    Also an :class:`OSError`, so ``except OSError`` catches it as it catches
    socket errors.
    """


class AddressInUseError(TransportError):
    """The address and port to listen on are taken by another socket."""


class ConnectionClosedError(TransportError):
    """The peer closed the connection (possibly in the middle of a message)."""


class TimeoutError(TransportError, builtins.TimeoutError):
    """No answer or no complete message in time (also the built-in ``TimeoutError``)."""


class OverloadedError(Error):
    """A bounded queue or connection table is full; try again later."""


class StorageError(Error):
    """The SQLite store failed: a data directory or file that cannot be used, a full disk..."""


class ConfigError(Error, ValueError):
    """An option has a bad value (bad host, port out of range, missing data directory...)."""


class UnsupportedError(ConfigError):
    """The option needs support this build of the package lacks: a cluster
    (``RelayServer(cluster=...)``, ``BuddyServer(status=...)``) without
    libnats, a ``postgresql://`` store without libpq. ``errc`` is
    ``"invalid_config"``; the message names the package to install."""


class CancelledError(Error):
    """A download was cancelled, here or by the server."""


class IntegrityError(Error):
    """A downloaded file's SHA-256 is not the one the server announced."""


# Every improto::errc, by its stable name. tests/python/test_errors.py checks
# that this covers _core.ERRC exactly.
_CLASS_FOR: Dict[str, Type[Error]] = {
    # framing
    "line_too_long": ProtocolError,
    "too_many_headers": ProtocolError,
    "malformed_header": ProtocolError,
    "bad_content_length": ProtocolError,
    "missing_content_length": ProtocolError,
    "body_too_large": ProtocolError,
    "truncated": ProtocolError,
    # grammar
    "malformed_start_line": ProtocolError,
    "unknown_command": ProtocolError,
    "invalid_name": ProtocolError,
    "invalid_argument": ProtocolError,
    "unsupported_version": ProtocolError,
    "unsupported_encoding": ProtocolError,
    "datagram_too_large": ProtocolError,
    # transport, servers and clients
    "address_in_use": AddressInUseError,
    "connection_refused": TransportError,
    "connection_closed": ConnectionClosedError,
    "timeout": TimeoutError,
    "io_error": TransportError,
    "overloaded": OverloadedError,
    "storage_error": StorageError,
    "name_taken": NameTakenError,
    "not_found": NotFoundError,
    "rejected": RejectedError,
    "invalid_config": ConfigError,
    # downloads
    "cancelled": CancelledError,
    "hash_mismatch": IntegrityError,
}


def error_class(errc: str) -> Type[Error]:
    """The exception class raised for an ``improto::errc`` name (:class:`Error` if unknown)."""
    return _CLASS_FOR.get(errc, Error)


def _from_core(errc: str, message: str, detail: str, code: Optional[int]) -> Error:
    # Called by _core's exception translator.
    return error_class(errc)(message, errc=errc, detail=detail, code=code)
