"""asyncio plumbing shared by the improto.aio clients."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Deque, Optional, Tuple

from .._errors import ConnectionClosedError, Error, TimeoutError
from .._net import DecodedStream, endpoint, transport_error

_READ_SIZE = 65536


async def _with_timeout(awaitable: Any, timeout: Optional[float], where: str, doing: str) -> Any:
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError as exc:
        if isinstance(exc, Error):  # ours, from inside (3.11: the same base class)
            raise
        raise TimeoutError(f"{where}: timed out {doing}", errc="timeout") from None


async def _request_once(host: str, port: int, what: str, decoder: Any, where: str, request: Any,
                        timeout: Optional[float]) -> Any:
    """As :func:`improto._net.request_once`: one request on a connection of its own."""
    async def run() -> Any:
        reader, writer = await _open(host, port, None, what)
        stream = _Stream(reader, writer, decoder, where)
        try:
            stream.write(request.data, request.doing)
            await stream.drain(request.doing)
            return await stream.next_message(request.doing)
        finally:
            stream.close()
    return await _with_timeout(run(), timeout, where, request.doing)


async def _open(host: str, port: int, timeout: Optional[float], what: str,
                local_addr: Optional[Tuple[str, int]] = None
                ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    where = f"{what} at {endpoint(host, port)}"
    try:
        return await _with_timeout(asyncio.open_connection(host, port, local_addr=local_addr),
                                   timeout, where, "connecting")
    except OSError as exc:
        raise transport_error(exc, where, "connecting") from exc


class _Stream(DecodedStream):
    """A stream reader/writer and an incremental decoder (see _net.Stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 decoder: Any, where: str) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        self.where = where
        self._ready: Deque[Any] = collections.deque()
        self.broken: Optional[Error] = None

    def write(self, data: bytes, doing: str) -> None:
        if self.broken is not None:
            raise self.broken
        if self.writer.is_closing():
            raise ConnectionClosedError(f"{self.where}: the connection is closed ({doing})",
                                        errc="connection_closed")
        self.writer.write(data)

    async def drain(self, doing: str) -> None:
        try:
            await self.writer.drain()
        except OSError as exc:
            self.broken = transport_error(exc, self.where, doing)
            raise self.broken from exc

    def _set_broken(self, err: Error) -> None:
        self.broken = err

    async def next_message(self, doing: str) -> Any:
        """The next message (no time limit: callers wrap it)."""
        while True:
            if self._ready:
                item = self._ready.popleft()
                if isinstance(item, BaseException):
                    raise item
                return item
            if self.broken is not None:
                raise self.broken
            try:
                data = await self.reader.read(_READ_SIZE)
            except OSError as exc:
                self.broken = transport_error(exc, self.where, doing)
                raise self.broken from exc
            if data:
                self._feed(data)
            else:
                self._on_eof(doing)

    def close(self) -> None:
        if self.broken is None:
            self.broken = ConnectionClosedError(f"{self.where}: the connection is closed",
                                                errc="connection_closed")
        self.writer.close()


