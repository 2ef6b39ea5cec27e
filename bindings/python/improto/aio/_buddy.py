"""improto.aio.BuddyClient, ChatSession and ChatListener."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Tuple

from .. import _exchanges as _ex
from .. import buddy as _buddy
from .._buddy_client import DEFAULT_TCP_PORT, DEFAULT_UDP_PORT
from .._buddy_client import _chat_receive, _line_of as _chat_line
from .._exchanges import Request
from .._errors import AddressInUseError, ConnectionClosedError, Error, TimeoutError
from .._net import check_port, check_timeout, endpoint, transport_error
from ._registry import _Datagrams
from ._stream import _open, _request_once, _Stream, _with_timeout

__all__ = ["BuddyClient", "ChatSession", "ChatListener"]


class BuddyClient:
    """The asyncio buddy client (protocol 2): the methods of
    :class:`improto.BuddyClient` as coroutines. UDP goes through one
    datagram endpoint opened at the first SET/GET."""

    def __init__(self, host: str = "127.0.0.1", tcp_port: int = DEFAULT_TCP_PORT,
                 udp_port: int = DEFAULT_UDP_PORT, timeout: Optional[float] = 10.0) -> None:
        self.host = host
        self.tcp_port = check_port(tcp_port, "tcp_port")
        self.udp_port = check_port(udp_port, "udp_port")
        self.timeout = check_timeout(timeout)
        self._udp: Optional[Tuple[asyncio.DatagramTransport, _Datagrams]] = None
        self._udp_lock = asyncio.Lock()

    async def __aenter__(self) -> "BuddyClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the UDP endpoint. Idempotent."""
        if self._udp is not None:
            self._udp[0].close()
            self._udp = None

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else check_timeout(timeout)

    async def _command(self, request: Any, timeout: Optional[float]) -> None:
        where = f"buddy server {endpoint(self.host, self.tcp_port)}"

        async def one(r: Request) -> Any:  # one request per connection
            return await _request_once(self.host, self.tcp_port, "buddy server",
                                       _buddy.ResponseDecoder(), where, r, self._timeout(timeout))
        await _ex.run_async(_ex.buddy_command(request, where), one)

    async def register(self, user: str, timeout: Optional[float] = None) -> None:
        """REG user; NameTakenError (203) when registered already."""
        await self._command(_buddy.RegisterRequest(user=user), timeout)

    async def add(self, user: str, buddy: str, timeout: Optional[float] = None) -> None:
        """ADD user buddy; NotFoundError (202) when either is unknown."""
        await self._command(_buddy.AddRequest(user=user, buddy=buddy), timeout)

    async def delete(self, user: str, buddy: str, timeout: Optional[float] = None) -> None:
        """DEL user buddy; NotFoundError (202) when either is unknown."""
        await self._command(_buddy.DeleteRequest(user=user, buddy=buddy), timeout)

    async def _endpoint(self) -> Tuple[asyncio.DatagramTransport, _Datagrams]:
        if self._udp is None:
            where = f"buddy server {endpoint(self.host, self.udp_port)} (UDP)"
            try:
                self._udp = await asyncio.get_running_loop().create_datagram_endpoint(
                    _Datagrams, remote_addr=(self.host, self.udp_port))
            except OSError as exc:
                raise transport_error(exc, where, "connecting") from exc
        return self._udp

    async def set_status(self, user: str, online: bool, msgport: int = 0) -> None:
        """SET user ONLINE/OFFLINE msgport (one datagram, no answer)."""
        transport, _ = await self._endpoint()
        transport.sendto(_ex.buddy_set(user, online, msgport))

    async def get(self, user: str, timeout: Optional[float] = None, attempts: int = 3) -> List[Any]:
        """GET user: the buddies' statuses, the datagram sent up to ``attempts``
        times within ``timeout``; NotFoundError (202) for an unknown user."""
        data, doing = _ex.buddy_get(user, attempts)
        where = f"buddy server {endpoint(self.host, self.udp_port)} (UDP)"
        timeout = self._timeout(timeout)
        async with self._udp_lock:
            transport, protocol = await self._endpoint()
            while not protocol.queue.empty():  # late answers to earlier GETs
                protocol.queue.get_nowait()
            protocol.error = None
            per_try = None if timeout is None else timeout / attempts
            for _ in range(attempts):
                transport.sendto(data)
                try:
                    got, addr = await _with_timeout(protocol.queue.get(), per_try, where, doing)
                except TimeoutError:
                    continue
                if addr is None and protocol.error is not None:
                    exc, protocol.error = protocol.error, None
                    raise transport_error(exc, where, doing)
                return _ex.buddy_statuses(got, where, doing)
        raise TimeoutError(f"{where}: timed out {doing} ({attempts} attempts)", errc="timeout")

    async def chat(self, host: str, port: int, me: str, timeout: Optional[float] = None) -> "ChatSession":
        """Opens a direct chat with the buddy at host:port as ``me``."""
        port = check_port(port)
        where = f"chat peer {endpoint(host, port)}"
        reader, writer = await _open(host, port, self._timeout(timeout), "chat peer")
        session = ChatSession(reader, writer, where)
        session._stream.write(_buddy.encode(_buddy.ChatHello(user=me)), f"CHAT {me}")
        await session._stream.drain(f"CHAT {me}")
        return session


class ChatSession:
    """An asyncio direct chat: :meth:`send_line`, ``await`` :meth:`receive`
    (a line, or None when the chat ended), ``async for line in session``,
    ``await`` :meth:`close`. :attr:`peer`: the caller's name on the
    listener's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str,
                 peer: Optional[str] = None) -> None:
        self._stream = _Stream(reader, writer, _buddy.ChatDecoder(), where)
        self.where = where
        self.peer = peer
        self._ended = False
        self._closed = False
        self._first: List[Any] = []

    @property
    def ended(self) -> bool:
        return self._ended or self._closed

    async def send_line(self, text: Any) -> None:
        """Sends one message line."""
        data = _buddy.encode(_buddy.ChatText(line=_chat_line(text)))
        if self.ended:
            raise ConnectionClosedError(f"{self.where}: the chat has ended", errc="connection_closed")
        self._stream.write(data, "sending a chat line")
        await self._stream.drain("sending a chat line")

    async def receive(self, timeout: Optional[float] = None) -> Optional[Any]:
        """The next line, or None when the other side ended the chat."""
        return await _with_timeout(self._receive(), check_timeout(timeout), self.where,
                                   "waiting for a chat line")

    async def _receive(self) -> Optional[Any]:
        async def one(_: None) -> Any:
            return await self._stream.next_message("waiting for a chat line")
        return await _ex.run_async(_chat_receive(self), one)

    def __aiter__(self) -> "ChatSession":
        return self

    async def __anext__(self) -> Any:
        line = await self.receive()
        if line is None:
            raise StopAsyncIteration
        return line

    async def close(self) -> None:
        """Sends ``q`` if the chat is on, and closes. Idempotent."""
        if self._closed:
            return
        if not self._ended:
            try:
                self._stream.write(_buddy.encode(_buddy.ChatQuit()), "sending q")
            except Error:
                pass
        self._closed = True
        self._stream.close()
        try:
            await self._stream.writer.wait_closed()
        except OSError:
            pass

    async def __aenter__(self) -> "ChatSession":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ChatListener:
    """Takes direct chats, one at a time (others get ``BUSY``):
    ``await ChatListener.start(port=0)``, then ``await`` :meth:`accept`."""

    def __init__(self) -> None:
        self._server: Optional[asyncio.base_events.Server] = None
        self._queue: "asyncio.Queue[ChatSession]" = asyncio.Queue()
        self._current: Optional[ChatSession] = None
        self.busy_answered = 0
        self.host = ""
        self.port = 0

    @classmethod
    async def start(cls, port: int = 0, host: str = "127.0.0.1") -> "ChatListener":
        self = cls()
        port = check_port(port, allow_zero=True)
        try:
            self._server = await asyncio.start_server(self._on_connection, host, port)
        except OSError as exc:
            err = transport_error(exc, f"chat listener {endpoint(host, port)}", "listening")
            if exc.errno == 98:
                err = AddressInUseError(str(err), errc="address_in_use")
            raise err from exc
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        return self

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._current is None or self._current.ended:
            peer = writer.get_extra_info("peername")
            self._current = ChatSession(reader, writer, f"chat caller {endpoint(peer[0], peer[1])}")
            self._queue.put_nowait(self._current)
            return
        self.busy_answered += 1
        writer.write(_buddy.encode(_buddy.ChatBusy()))
        try:
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass

    async def accept(self, timeout: Optional[float] = None) -> ChatSession:
        """The next chat; :attr:`ChatSession.peer` is the caller's name."""
        where = f"chat listener {endpoint(self.host, self.port)}"

        async def run() -> ChatSession:
            session = await self._queue.get()
            first = await session._stream.next_message("waiting for CHAT name")
            if isinstance(first, _buddy.ChatHello):
                session.peer = first.user
            else:
                session._first.append(first)
            return session
        return await _with_timeout(run(), check_timeout(timeout), where, "waiting for a caller")

    async def close(self) -> None:
        """Stops listening (accepted chats go on)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        while not self._queue.empty():
            await self._queue.get_nowait().close()

    async def __aenter__(self) -> "ChatListener":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
