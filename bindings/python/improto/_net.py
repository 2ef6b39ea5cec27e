"""Socket plumbing shared by the blocking clients: connecting, turning
OSErrors into improto errors that name the peer, and a message stream
(a socket plus one of the codecs' incremental decoders).

Every socket call here releases the GIL (CPython's socket module does)."""

from __future__ import annotations

import collections
import socket
import time
from typing import Any, Callable, Deque, Optional, Tuple

from ._errors import (
    ConfigError,
    ConnectionClosedError,
    Error,
    ProtocolError,
    TimeoutError,
    TransportError,
)

__all__ = ["check_port", "check_timeout", "endpoint", "transport_error", "connect", "deadline_of", "Stream"]

_RECV_SIZE = 65536


def check_port(port: Any, what: str = "port", allow_zero: bool = False) -> int:
    """An int port in range, or ConfigError."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(f"{what}: expected an int from {0 if allow_zero else 1} to 65535, not {port!r}",
                          errc="invalid_config")
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ConfigError(f"{what}: {port} is out of range ({0 if allow_zero else 1}..65535)",
                          errc="invalid_config")
    return port


def check_timeout(timeout: Any, what: str = "timeout", none_ok: bool = True) -> Optional[float]:
    """None (when allowed) or a non-negative number of seconds, or ConfigError."""
    if timeout is None and none_ok:
        return None
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected a number of seconds, not {timeout!r}",
                          errc="invalid_config") from None
    if not 0 <= value < 1e9:
        raise ConfigError(f"{what}: expected a number of seconds from 0, not {timeout!r}",
                          errc="invalid_config")
    return value


def endpoint(host: str, port: int) -> str:
    """host:port, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def transport_error(exc: BaseException, where: str, doing: str) -> Error:
    """The improto error for an OSError raised while `doing` something with `where`."""
    if isinstance(exc, Error):
        return exc
    # BlockingIOError: a zero timeout left (the socket was non-blocking).
    if isinstance(exc, (socket.timeout, BlockingIOError)):  # socket.timeout: builtins.TimeoutError from 3.10
        return TimeoutError(f"{where}: timed out {doing}", errc="timeout")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"{where}: connection refused ({doing})", errc="connection_refused")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectionClosedError(f"{where}: connection closed by the peer ({doing}): {exc.strerror or exc}",
                                     errc="connection_closed")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"{where}: cannot resolve the host ({doing}): {exc.strerror or exc}",
                              errc="io_error")
    if isinstance(exc, OSError):
        return TransportError(f"{where}: {exc.strerror or exc} ({doing})", errc="io_error")
    return TransportError(f"{where}: {exc} ({doing})", errc="io_error")


def connect(host: str, port: int, timeout: Optional[float], what: str,
            source: Optional[Tuple[str, int]] = None) -> socket.socket:
    """A TCP connection to host:port (errors name `what` and host:port)."""
    where = f"{what} at {endpoint(host, port)}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
    except OSError as exc:
        raise transport_error(exc, where, "connecting") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class DecodedStream:
    """What the blocking and asyncio streams share: decoded messages queue in
    ``self._ready``; a stream error is handed to ``self._set_broken``."""

    decoder: Any
    where: str
    _ready: Any

    def _set_broken(self, err: Error) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        try:
            self._ready.extend(self.decoder.feed(data))
        except ProtocolError as exc:
            self._ready.extend(getattr(exc, "messages", None) or [])
            exc.args = (f"{self.where}: {exc.message}",)
            if getattr(self.decoder, "failed", True):
                self._set_broken(exc)
            else:
                self._ready.append(exc)

    def _on_eof(self, doing: str) -> None:
        try:
            self._ready.extend(self.decoder.finish())
        except ProtocolError as exc:
            self._ready.extend(getattr(exc, "messages", None) or [])
            self._set_broken(ConnectionClosedError(
                f"{self.where}: the peer closed the connection in the middle of a message ({doing})",
                errc="connection_closed", detail=exc.message))
            return
        self._set_broken(ConnectionClosedError(
            f"{self.where}: the peer closed the connection ({doing})", errc="connection_closed"))


class Stream(DecodedStream):
    """A connected socket and an incremental decoder: next_message() returns
    the messages one by one, reading as needed, within a deadline.

    Decoding errors follow the codecs: a framing error (the decoder
    `failed`) breaks the stream for good; a grammar error in one message is
    raised when that message's turn comes, and reading goes on after it.
    """

    def __init__(self, sock: socket.socket, decoder: Any, where: str) -> None:
        self.sock = sock
        self.decoder = decoder
        self.where = where
        self._ready: Deque[Any] = collections.deque()  # messages, or exceptions to raise in turn
        self._broken: Optional[Error] = None
        self._closed = False

    def send(self, data: bytes, timeout: Optional[float], doing: str) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)
        except OSError as exc:
            # Even a timeout breaks the stream: part of the message may be out.
            err = transport_error(exc, self.where, doing)
            self._broken = err
            raise err from exc

    def _set_broken(self, err: Error) -> None:
        self._broken = err

    def next_message(self, deadline: Optional[float], doing: str,
                     on_data: Optional[Callable[[], None]] = None) -> Any:
        """The next message; raises TimeoutError at the deadline (a
        time.monotonic() value, None: no limit), ConnectionClosedError at the
        end of the stream, ProtocolError for bad bytes."""
        while True:
            if self._ready:
                item = self._ready.popleft()
                if isinstance(item, BaseException):
                    raise item
                return item
            if self._broken is not None:
                raise self._broken
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise TimeoutError(f"{self.where}: timed out {doing}", errc="timeout")
            try:
                self.sock.settimeout(timeout)
                data = self.sock.recv(_RECV_SIZE)
            except OSError as exc:
                if self._closed:  # close() from another thread (EBADF)
                    raise self._broken or exc
                err = transport_error(exc, self.where, doing)
                if not isinstance(err, TimeoutError):
                    self._broken = err
                raise err from exc
            if not data:
                self._on_eof(doing)
            else:
                self._feed(data)

    def close(self) -> None:
        self._closed = True
        if self._broken is None:
            self._broken = ConnectionClosedError(f"{self.where}: the connection is closed",
                                                 errc="connection_closed")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def request_once(host: str, port: int, what: str, decoder: Any, where: str, request: Any,
                 timeout: Optional[float]) -> Any:
    """One request (an ``_exchanges.Request``) on a connection of its own,
    closed after: the decoded reply. ``timeout`` bounds connecting, sending
    and the wait for the reply."""
    deadline = deadline_of(timeout)
    stream = Stream(connect(host, port, timeout, what), decoder, where)
    try:
        stream.send(request.data, timeout, request.doing)
        return stream.next_message(deadline, request.doing)
    finally:
        stream.close()
