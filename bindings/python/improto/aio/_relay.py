"""improto.aio.RelayClient."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Deque, List, Optional

from .. import relay as _relay
from .._errors import ConnectionClosedError, Error, ProtocolError
from .._net import check_port, check_timeout, endpoint
from .._relay_client import DEFAULT_RELAY_PORT, Body, _as_bytes, relay_error
from ._stream import _open, _Stream, _with_timeout

__all__ = ["RelayClient"]


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
        doing = f"registering {self.name!r}"
        stream.write(_relay.encode(_relay.RegisterRequest(role=role, user=self.name)), doing)
        await stream.drain(doing)
        reply = await stream.next_message(doing)
        if isinstance(reply, _relay.ErrorReply):
            raise relay_error(reply, stream.where, doing)
        if not isinstance(reply, _relay.Registered):
            raise ProtocolError(f"{stream.where}: {doing}: unexpected answer {reply!r}",
                                errc="invalid_argument")

    async def close(self) -> None:
        """Closes both sockets (the server unregisters the name). Idempotent."""
        if self._closed:
            return
        self._closed = True
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
        except asyncio.CancelledError:
            pass

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosedError(f"{self._where}: the client is closed", errc="connection_closed")

    async def _request(self, message: Any, timeout: Optional[float], doing: str) -> Any:
        self._check_open()
        stream = self._send
        assert stream is not None
        data = _relay.encode(message)
        fut = asyncio.get_running_loop().create_future()
        stream.write(data, doing)  # raises if broken: then nothing is queued
        self._waiting.append(fut)
        timeout = self.timeout if timeout is None else check_timeout(timeout)
        try:
            reply = await _with_timeout(self._finish(stream, fut, doing), timeout, self._where, doing)
        except BaseException:
            fut.cancel()  # keeps its place in the queue: its reply is dropped when it comes
            raise
        if isinstance(reply, _relay.ErrorReply):
            raise relay_error(reply, self._where, doing)
        return reply

    @staticmethod
    async def _finish(stream: _Stream, fut: asyncio.Future, doing: str) -> Any:
        await stream.drain(doing)
        # shield: a timeout must leave the future in the queue (its reply will come).
        return await asyncio.shield(fut)

    def _expect(self, reply: Any, cls: type, doing: str) -> Any:
        if not isinstance(reply, cls):
            raise ProtocolError(f"{self._where}: {doing}: unexpected answer {reply!r}",
                                errc="invalid_argument")
        return reply

    async def send(self, to: str, body: Body, timeout: Optional[float] = None) -> None:
        """SEND: returns once the server answers SENT; ``.code == 102`` when undeliverable."""
        doing = f"SEND to {to!r}"
        self._expect(await self._request(_relay.Send(to=to, body=_as_bytes(body)), timeout, doing),
                     _relay.Sent, doing)

    async def send_all(self, body: Body, timeout: Optional[float] = None) -> None:
        """SEND ALL: returns once every other user acknowledged it (SENT ALL)."""
        self._expect(await self._request(_relay.Send(to="ALL", body=_as_bytes(body)), timeout,
                                         "SEND ALL"), _relay.Sent, "SEND ALL")

    async def list_users(self, timeout: Optional[float] = None) -> List[str]:
        """Users online, sorted, every page."""
        users: List[str] = []
        after = ""
        while True:
            reply = self._expect(await self._request(_relay.ListUsers(after=after), timeout,
                                                     "LIST USERS"), _relay.UserList, "LIST USERS")
            users.extend(reply.users)
            if not reply.more or not reply.users:
                return users
            after = reply.users[-1]

    async def list_files(self, timeout: Optional[float] = None) -> List[Any]:
        """The server's files (``improto.relay.FileEntry``), every page."""
        files: List[Any] = []
        after = ""
        while True:
            reply = self._expect(await self._request(_relay.ListFiles(after=after), timeout,
                                                     "LIST FILES"), _relay.FileList, "LIST FILES")
            files.extend(reply.files)
            if not reply.more or not reply.files:
                return files
            after = reply.files[-1].name

    async def subscribe_presence(self, timeout: Optional[float] = None) -> None:
        """From now on ``Joined``/``Left`` events come with the messages."""
        self._expect(await self._request(_relay.Subscribe(), timeout, "SUBSCRIBE PRESENCE"),
                     _relay.Subscribed, "SUBSCRIBE PRESENCE")

    async def unsubscribe_presence(self, timeout: Optional[float] = None) -> None:
        """Stops the presence notices."""
        self._expect(await self._request(_relay.Unsubscribe(), timeout, "UNSUBSCRIBE PRESENCE"),
                     _relay.Unsubscribed, "UNSUBSCRIBE PRESENCE")

    # -------------------------------------------------------------- events

    async def _next_event(self) -> Any:
        stream = self._recv
        assert stream is not None
        doing = "waiting for messages"
        while True:
            ev = await stream.next_message(doing)
            if isinstance(ev, _relay.Forward):
                stream.write(_relay.encode(_relay.Received(from_=ev.from_)), "answering RECEIVED")
                return ev
            if isinstance(ev, (_relay.Joined, _relay.Left)):
                return ev
            if isinstance(ev, _relay.ErrorReply):
                raise relay_error(ev, stream.where, doing)
            raise ProtocolError(f"{stream.where}: unexpected message {ev!r}", errc="unknown_command")

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
            except ConnectionClosedError:
                if self._closed:
                    return
                raise
            except Error as exc:
                if exc.errc == "timeout":
                    return
                raise
