"""improto.aio.RelayClient."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Deque, Dict, Generator, List, Optional

from .. import _downloads
from .. import _exchanges as _ex
from .. import relay as _relay
from .._downloads import DownloadProgress, DownloadResult, PathLike, Progress
from .._errors import ConnectionClosedError, Error, ProtocolError, TimeoutError
from .._exchanges import Request
from .._net import check_port, check_timeout, endpoint
from .._relay_client import DEFAULT_RELAY_PORT, Body
from ._stream import _open, _Stream, _with_timeout

__all__ = ["RelayClient", "Download"]


class RelayClient:
    """An asyncio relay user; create it with ``await RelayClient.connect(...)``.

    Requests are coroutines that return when the reply comes; any number may
    be in flight at once from several tasks (they are pipelined on the send
    socket, and the replies matched in order). Incoming events come from
    :meth:`receive` / ``async for ev in client.events()``; each FORWARD is
    answered RECEIVED as it is taken. See :class:`improto.RelayClient` for
    the errors.
    """

    def __init__(self, name: str, host: str, port: int, timeout: Optional[float]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout
        self._where = f"relay {endpoint(host, port)}"
        self._send: Optional[_Stream] = None
        self._recv: Optional[_Stream] = None
        self._waiting: Deque[asyncio.Future] = collections.deque()
        self._reply_task: Optional[asyncio.Task] = None
        self._recv_lock = asyncio.Lock()
        self._closed = False
        self._downloads: Dict[int, "Download"] = {}

    @classmethod
    async def connect(cls, name: str, host: str = "127.0.0.1", port: int = DEFAULT_RELAY_PORT,
                      timeout: Optional[float] = 10.0) -> "RelayClient":
        """Connects both sockets from one local address and registers ``name`` on each."""
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, not {type(name).__name__}")
        self = cls(name, host, check_port(port), check_timeout(timeout))
        try:
            await _with_timeout(self._connect(), self.timeout, self._where, f"registering {name!r}")
        except BaseException:
            self._close_streams()
            raise
        self._reply_task = asyncio.get_running_loop().create_task(self._read_replies())
        return self

    async def _connect(self) -> None:
        reader, writer = await _open(self.host, self.port, None, "relay")
        self._send = _Stream(reader, writer, _relay.Decoder(direction=_relay.Direction.TO_CLIENT),
                             f"{self._where} (send socket)")
        local_ip = writer.get_extra_info("sockname")[0]
        reader, writer = await _open(self.host, self.port, None, "relay", local_addr=(local_ip, 0))
        self._recv = _Stream(reader, writer, _relay.Decoder(direction=_relay.Direction.TO_CLIENT),
                             f"{self._where} (receive socket)")
        await self._register(self._send, _relay.Role.TO_SEND)
        await self._register(self._recv, _relay.Role.TO_RECV)

    async def _register(self, stream: _Stream, role: Any) -> None:
        async def one(r: Request) -> Any:
            stream.write(r.data, r.doing)
            await stream.drain(r.doing)
            return await stream.next_message(r.doing)
        await _ex.run_async(_ex.relay_register(self.name, role, stream.where), one)

    async def close(self) -> None:
        """Closes both sockets (the server unregisters the name). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_downloads("the client was closed")
        self._close_streams()
        if self._reply_task is not None:
            self._reply_task.cancel()
            try:
                await self._reply_task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_waiting(ConnectionClosedError(f"{self._where}: the client is closed",
                                                 errc="connection_closed"))
        for stream in (self._send, self._recv):
            if stream is not None:
                try:
                    await stream.writer.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass

    def _close_streams(self) -> None:
        for stream in (self._send, self._recv):
            if stream is not None:
                stream.close()

    async def __aenter__(self) -> "RelayClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<improto.aio.RelayClient {self.name!r} {endpoint(self.host, self.port)}" \
               f"{' closed' if self._closed else ''}>"

    @property
    def pending(self) -> int:
        """Requests sent whose replies have not come yet."""
        return len(self._waiting)

    # ------------------------------------------------------------ requests

    def _fail_waiting(self, exc: Error) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)

    async def _read_replies(self) -> None:
        stream = self._send
        assert stream is not None
        try:
            while True:
                reply = await stream.next_message("waiting for a reply")
                if not self._waiting:
                    raise ProtocolError(f"{stream.where}: a reply nobody asked for: {reply!r}",
                                        errc="invalid_argument")
                fut = self._waiting.popleft()
                if not fut.done():  # done: its caller timed out or was cancelled
                    fut.set_result(reply)
        except Error as exc:
            stream.broken = stream.broken or exc
            self._fail_waiting(exc)
            self._stop_downloads(f"the connection to the server ended: {exc}")
        except asyncio.CancelledError:
            pass

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosedError(f"{self._where}: the client is closed", errc="connection_closed")

    async def _request(self, request: Request, timeout: Optional[float]) -> Any:
        """Sends one request on the send socket and returns its reply."""
        self._check_open()
        stream = self._send
        assert stream is not None
        doing = request.doing
        fut = asyncio.get_running_loop().create_future()
        stream.write(request.data, doing)  # raises if broken: then nothing is queued
        self._waiting.append(fut)
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        try:
            return await _with_timeout(self._finish(stream, fut, doing), timeout, self._where, doing)
        except BaseException:
            fut.cancel()  # keeps its place in the queue: its reply is dropped when it comes
            raise

    async def _run(self, exchange: Any, timeout: Optional[float]) -> Any:
        return await _ex.run_async(exchange, lambda r: self._request(r, timeout))

    @staticmethod
    async def _finish(stream: _Stream, fut: asyncio.Future, doing: str) -> Any:
        await stream.drain(doing)
        # shield: a timeout must leave the future in the queue (its reply will come).
        return await asyncio.shield(fut)

    async def send(self, to: str, body: Body, timeout: Optional[float] = None) -> None:
        """SEND: returns once the server answers SENT; ``.code == 102`` when undeliverable."""
        await self._run(_ex.relay_send(to, body, self._where), timeout)

    async def send_all(self, body: Body, timeout: Optional[float] = None) -> None:
        """SEND ALL: returns once every other user acknowledged it (SENT ALL)."""
        await self._run(_ex.relay_send("ALL", body, self._where), timeout)

    async def list_users(self, timeout: Optional[float] = None) -> List[str]:
        """Users online, sorted, every page."""
        return await self._run(_ex.relay_list_users(self._where), timeout)

    async def list_files(self, timeout: Optional[float] = None) -> List[Any]:
        """The server's files (``improto.relay.FileEntry``), every page."""
        return await self._run(_ex.relay_list_files(self._where), timeout)

    async def list_files_page(self, after: str = "", timeout: Optional[float] = None) -> Any:
        """One page of LIST FILES: the ``improto.relay.FileList`` reply
        (``.files``, ``.more``); the next page is the one ``after`` the last
        name of this one."""
        return await self._run(_ex.relay_list_files_page(after, self._where), timeout)

    async def subscribe_presence(self, timeout: Optional[float] = None) -> None:
        """From now on ``Joined``/``Left`` events come with the messages."""
        await self._run(_ex.relay_subscribe(self._where), timeout)

    async def unsubscribe_presence(self, timeout: Optional[float] = None) -> None:
        """Stops the presence notices."""
        await self._run(_ex.relay_unsubscribe(self._where), timeout)

    # ----------------------------------------------------------- downloads

    async def download(self, name: str, directory: PathLike = ".",
                       progress: Optional[Progress] = None, *, rate_limit: float = 0,
                       timeout: Optional[float] = None) -> "Download":
        """Starts downloading ``name`` into ``directory``; returns the
        :class:`Download` handle once the server accepted (``await handle``
        waits for the :class:`improto.DownloadResult`). The bytes travel on
        the package's download thread, never on the event loop; ``progress``
        is called on the loop (``call_soon_threadsafe``). Same files, resume
        and errors as :meth:`improto.RelayClient.download`."""
        self._check_open()
        rate = _downloads.check_rate(rate_limit)
        loop = asyncio.get_running_loop()
        assert self._send is not None
        transport = self._send.writer.transport
        local_ip, server_ip = _downloads.local_and_peer(transport.get_extra_info("sockname"),
                                                        transport.get_extra_info("peername"))

        async def one(step: _downloads.Step) -> Any:
            if isinstance(step, Request):
                return await self._request(step, timeout)
            if isinstance(step, _downloads.Offload):
                return await loop.run_in_executor(None, step)  # hashing: off the loop
            return self._begin(step, loop)
        return await _ex.run_async(
            _downloads.start(name, directory, self._where, local_ip, server_ip, rate,
                             _threadsafe(loop), progress, self._download_ended), one)

    def _begin(self, step: _downloads.Begin, loop: asyncio.AbstractEventLoop) -> "Download":
        handle = Download(self, step.transfer, loop)
        self._downloads[handle.id] = handle
        try:
            step.start()
        except BaseException:
            self._downloads.pop(handle.id, None)
            raise
        return handle

    def _download_ended(self, transfer: Any) -> None:
        handle = self._downloads.get(transfer.id)
        if handle is not None and handle._transfer is transfer:
            del self._downloads[transfer.id]
        if handle is not None:
            handle._settle()

    def _stop_downloads(self, reason: str) -> None:
        for handle in list(self._downloads.values()):
            handle._transfer.stop(reason)

    def downloads(self) -> List["Download"]:
        """The downloads running now."""
        return list(self._downloads.values())

    # -------------------------------------------------------------- events

    async def _next_event(self) -> Any:
        stream = self._recv
        assert stream is not None
        ev, answer = _ex.relay_event(await stream.next_message(_ex.EVENTS_DOING), stream.where)
        if answer:
            stream.write(answer, _ex.RECEIVED_DOING)
        return ev

    async def receive(self, timeout: Optional[float] = None) -> Any:
        """The next event (``Forward``, answered RECEIVED; ``Joined``; ``Left``);
        :class:`improto.TimeoutError` after ``timeout`` seconds (None: no limit)."""
        self._check_open()
        timeout = check_timeout(timeout)
        async with self._recv_lock:
            ev = await _with_timeout(self._next_event(), timeout, self._where, "waiting for messages")
        stream = self._recv
        assert stream is not None
        if stream.writer.transport.get_write_buffer_size():
            await stream.drain("answering RECEIVED")
        return ev

    async def events(self, timeout: Optional[float] = None) -> AsyncIterator[Any]:
        """``async for ev in client.events()``: ends when no event came for
        ``timeout`` seconds (None: never) or when the client is closed."""
        while True:
            try:
                yield await self.receive(timeout)
            except Error as exc:
                if _ex.ends_events(exc, self._closed):
                    return
                raise


def _threadsafe(loop: asyncio.AbstractEventLoop) -> Any:
    def deliver(fn: Any, *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more
    return deliver


class Download(_downloads.DownloadHandle):
    """A running download of :meth:`RelayClient.download` (asyncio).

    ``await handle`` (or ``await handle.result()``) gives the
    :class:`improto.DownloadResult` or raises as
    :class:`improto.Download.result` does; ``await handle.pause()``,
    ``resume()``, ``cancel()``; :attr:`progress` is the latest
    :class:`improto.DownloadProgress`. Attributes as
    :class:`improto.Download`.
    """

    _kind = "improto.aio.Download"

    def __init__(self, client: RelayClient, transfer: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(transfer)
        self._client = client
        self._future: asyncio.Future = loop.create_future()

    def _settle(self) -> None:
        # On the loop, after the watcher thread ended (call_soon_threadsafe).
        if self._future.done():
            return
        error = self._transfer.error
        if error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(self._transfer.result)

    async def pause(self, timeout: Optional[float] = None) -> None:
        """PAUSE (see :meth:`improto.Download.pause`)."""
        self._transfer.core.pause()
        self._transfer.set_paused(True)
        await self._client._run(_ex.relay_pause(self.id, self._client._where), timeout)

    async def resume(self, timeout: Optional[float] = None) -> None:
        """RESUME (see :meth:`improto.Download.resume`)."""
        await self._client._run(_ex.relay_resume(self.id, self._client._where), timeout)
        self._transfer.set_paused(False)
        self._transfer.core.resume()

    async def cancel(self, timeout: Optional[float] = None) -> None:
        """CANCEL; returns once the download ended and its part file is gone."""
        if self.done():
            return
        self._transfer.cancelling = True
        self._transfer.core.cancel()
        # ERROR 107 is fine: our ABORT ended it on the server first.
        await self._client._run(_ex.relay_cancel(self.id, self._client._where), timeout)
        await self.wait(self._client.timeout if timeout is None else timeout)

    def done(self) -> bool:
        """True once the outcome is known on the loop."""
        return self._future.done()

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to ``timeout`` seconds (None: no limit) for the end; True if it ended."""
        try:
            await asyncio.wait_for(asyncio.shield(self._future), check_timeout(timeout))
        except asyncio.TimeoutError:
            return False
        except Exception:
            pass  # the download's own error: result() raises it
        return True

    async def result(self, timeout: Optional[float] = None) -> DownloadResult:
        """The :class:`improto.DownloadResult` once finished (``timeout``
        seconds, None: no limit), or the download's error."""
        if not await self.wait(timeout):
            raise TimeoutError(f"{self._client._where}: download {self.id} of {self.file!r} "
                               f"not finished after {timeout} s", errc="timeout")
        return self._future.result()

    def __await__(self) -> Generator[Any, None, DownloadResult]:
        return asyncio.shield(self._future).__await__()
