"""The blocking buddy client (protocol 2, seed 002): TCP requests, UDP
status, and the direct chat between buddies (caller and listener)."""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Any, Generator, Iterator, List, Optional, Tuple, Union

from . import _exchanges as _ex
from . import buddy as _buddy
from ._errors import AddressInUseError, ConnectionClosedError, Error, ProtocolError, RejectedError, TimeoutError
from ._exchanges import Request, buddy_error
from ._net import (Stream, check_port, check_timeout, connect, deadline_of, endpoint, request_once,
                   transport_error)

__all__ = ["BuddyClient", "ChatSession", "ChatListener", "buddy_error",
           "DEFAULT_TCP_PORT", "DEFAULT_UDP_PORT"]

DEFAULT_TCP_PORT = 1234
DEFAULT_UDP_PORT = 1235

Text = Union[bytes, bytearray, memoryview, str]

def _line_of(text: Text) -> bytes:
    return _ex.as_bytes(text, "text")


def _chat_receive(session: Any) -> "Generator[None, Any, Optional[Any]]":
    """One receive() of a chat session (blocking or asyncio), without I/O:
    yields to be sent the next message from the peer (or thrown what ended
    the reading); returns the next line, or None once the chat ended."""
    while True:
        if session.ended and not session._first:
            return None
        try:
            msg = session._first.pop(0) if session._first else (yield)
        except ConnectionClosedError as exc:
            if exc.detail == "":  # a close between lines ends the chat like q
                session._ended = True
                return None
            raise
        if isinstance(msg, _buddy.ChatText):
            return msg.line
        if isinstance(msg, _buddy.ChatQuit):
            session._ended = True
            return None
        if isinstance(msg, _buddy.ChatBusy):
            session._ended = True
            raise RejectedError(f"{session.where}: the buddy is busy (BUSY)", errc="rejected",
                                detail="BUSY")
        if isinstance(msg, _buddy.ChatHello):  # a caller introducing itself
            session.peer = msg.user
            continue
        raise ProtocolError(f"{session.where}: unexpected {msg!r}", errc="invalid_argument")


class BuddyClient:
    """A client of the buddy server (protocol 2): TCP requests (REG, ADD,
    DEL; one connection each), the UDP status (SET; GET, retried), and
    :meth:`chat` to open a direct chat with a buddy.

    Args:
        host: the buddy server.
        tcp_port, udp_port: its ports (the seed's 1234 and 1235).
        timeout: seconds a call may take by default (``timeout=`` per call).

    Errors: :class:`improto.NameTakenError` (203 USER EXISTS),
    :class:`improto.NotFoundError` (202 NO SUCH USER),
    :class:`improto.ProtocolError` (201 INVALID, or a name the codec refuses),
    each with ``.code``; :class:`improto.TransportError` and
    :class:`improto.TimeoutError` naming host:port.

    Example::

        with improto.BuddyClient("127.0.0.1", 1234, 1235) as b:
            b.register("alice"); b.register("bob"); b.add("alice", "bob")
            b.set_status("bob", True, 4000)
            print(b.get("alice"))   # [BuddyEntry user='bob' status=ONLINE ...]
    """

    def __init__(self, host: str = "127.0.0.1", tcp_port: int = DEFAULT_TCP_PORT,
                 udp_port: int = DEFAULT_UDP_PORT, timeout: Optional[float] = 10.0) -> None:
        self.host = host
        self.tcp_port = check_port(tcp_port, "tcp_port")
        self.udp_port = check_port(udp_port, "udp_port")
        self.timeout = check_timeout(timeout)
        self._udp: Optional[socket.socket] = None
        self._udp_lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> "BuddyClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the UDP socket. Idempotent."""
        self._closed = True
        with self._udp_lock:
            if self._udp is not None:
                self._udp.close()
                self._udp = None

    def __repr__(self) -> str:
        return f"<BuddyClient {endpoint(self.host, self.tcp_port)} udp {self.udp_port}>"

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else check_timeout(timeout)

    # ----------------------------------------------------------------- TCP

    def _command(self, request: Any, timeout: Optional[float]) -> None:
        timeout = self._timeout(timeout)
        where = f"buddy server {endpoint(self.host, self.tcp_port)}"

        def one(r: Request) -> Any:  # one request per connection
            return request_once(self.host, self.tcp_port, "buddy server", _buddy.ResponseDecoder(),
                                where, r, timeout)
        _ex.run(_ex.buddy_command(request, where), one)

    def register(self, user: str, timeout: Optional[float] = None) -> None:
        """REG user; NameTakenError (203) when registered already."""
        self._command(_buddy.RegisterRequest(user=user), timeout)

    def add(self, user: str, buddy: str, timeout: Optional[float] = None) -> None:
        """ADD user buddy; NotFoundError (202) when either is unknown."""
        self._command(_buddy.AddRequest(user=user, buddy=buddy), timeout)

    def delete(self, user: str, buddy: str, timeout: Optional[float] = None) -> None:
        """DEL user buddy; NotFoundError (202) when either is unknown."""
        self._command(_buddy.DeleteRequest(user=user, buddy=buddy), timeout)

    # ----------------------------------------------------------------- UDP

    def _udp_socket(self) -> socket.socket:
        if self._closed:
            raise ConnectionClosedError("the BuddyClient is closed", errc="connection_closed")
        if self._udp is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                # connect(): only the server's datagrams come in.
                sock.connect((self.host, self.udp_port))
            except OSError as exc:
                sock.close()
                raise transport_error(exc, f"buddy server {endpoint(self.host, self.udp_port)} (UDP)",
                                      "connecting") from exc
            self._udp = sock
        return self._udp

    def _udp_send(self, sock: socket.socket, data: bytes, where: str, doing: str) -> None:
        try:
            sock.settimeout(None)
            sock.send(data)
        except OSError as exc:
            raise transport_error(exc, where, doing) from exc

    def set_status(self, user: str, online: bool, msgport: int = 0) -> None:
        """SET user ONLINE/OFFLINE msgport (one datagram, no answer): the
        server records this client's address with it. ``msgport`` is the
        port this user takes chats on (1..65535 when online)."""
        data = _ex.buddy_set(user, online, msgport)
        where = f"buddy server {endpoint(self.host, self.udp_port)} (UDP)"
        with self._udp_lock:
            self._udp_send(self._udp_socket(), data, where, f"SET {user}")

    def get(self, user: str, timeout: Optional[float] = None, attempts: int = 3) -> List[Any]:
        """GET user: the statuses of the user's buddies (``improto.buddy.BuddyEntry``:
        user, status, ip, port). The datagram is sent up to ``attempts`` times
        within ``timeout``; NotFoundError (202) for an unknown user."""
        data, doing = _ex.buddy_get(user, attempts)
        timeout = self._timeout(timeout)
        deadline = deadline_of(timeout)
        where = f"buddy server {endpoint(self.host, self.udp_port)} (UDP)"
        with self._udp_lock:
            sock = self._udp_socket()
            self._drain(sock)  # late answers to earlier GETs
            for attempt in range(attempts):
                self._udp_send(sock, data, where, doing)
                now = time.monotonic()
                left = None if deadline is None else deadline - now
                wait = None if left is None else left / (attempts - attempt)
                until = None if wait is None else now + wait
                reply = self._await_reply(sock, until, where, doing)
                if reply is not None:
                    break
            else:
                raise TimeoutError(f"{where}: timed out {doing} ({attempts} attempts)", errc="timeout")
        return _ex.buddy_statuses(reply, where, doing)

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            while True:
                sock.recv(65536)
        except OSError:
            pass
        finally:
            sock.setblocking(True)

    @staticmethod
    def _await_reply(sock: socket.socket, until: Optional[float], where: str,
                     doing: str) -> Optional[bytes]:
        while True:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                sock.settimeout(left)
                data = sock.recv(65536)
            except socket.timeout:
                return None
            except OSError as exc:
                # ECONNREFUSED: an ICMP "port unreachable" for the previous datagram.
                raise transport_error(exc, where, doing) from exc
            return data

    # ---------------------------------------------------------------- chat

    def chat(self, host: str, port: int, me: str, timeout: Optional[float] = None) -> "ChatSession":
        """Opens a direct chat with the buddy listening at host:port (from
        :meth:`get`), introducing this side as ``me`` (``CHAT me``)."""
        return ChatSession.open(host, port, me, self._timeout(timeout))


class ChatSession:
    """One direct chat (protocol 2): lines of text both ways until one side
    sends ``q`` or closes. From :meth:`BuddyClient.chat` (the caller) or
    :meth:`ChatListener.accept` (the callee; :attr:`peer` is the caller's
    name). Use :meth:`send_line`, :meth:`receive` or iterate over the lines;
    :meth:`close` sends ``q`` and closes.

    :meth:`receive` raises :class:`improto.RejectedError` (errc ``rejected``)
    when the callee answered ``BUSY``.
    """

    def __init__(self, sock: socket.socket, where: str, timeout: Optional[float],
                 peer: Optional[str] = None) -> None:
        self._stream = Stream(sock, _buddy.ChatDecoder(), where)
        self.where = where
        self.timeout = timeout
        self.peer = peer
        self._ended = False
        self._closed = False
        self._lock = threading.Lock()
        self._first: List[Any] = []  # a text line read while looking for the hello

    @classmethod
    def open(cls, host: str, port: int, me: str, timeout: Optional[float]) -> "ChatSession":
        port = check_port(port)
        hello = _buddy.encode(_buddy.ChatHello(user=me))
        sock = connect(host, port, timeout, "chat peer")
        session = cls(sock, f"chat peer {endpoint(host, port)}", timeout)
        try:
            session._stream.send(hello, timeout, f"CHAT {me}")
        except BaseException:
            session._stream.close()
            raise
        return session

    @property
    def ended(self) -> bool:
        """True once either side ended the chat (``q``, BUSY, a close)."""
        return self._ended or self._closed

    def send_line(self, text: Text, timeout: Optional[float] = None) -> None:
        """Sends one message (no line breaks or control characters; not ``q``)."""
        data = _buddy.encode(_buddy.ChatText(line=_line_of(text)))
        if self.ended:
            raise ConnectionClosedError(f"{self.where}: the chat has ended", errc="connection_closed")
        self._stream.send(data, self.timeout if timeout is None else check_timeout(timeout),
                          "sending a chat line")

    def receive(self, timeout: Optional[float] = None) -> Optional[Any]:
        """The next line from the other side, or None when the chat ended
        (``q`` or a close). Waits at most ``timeout`` seconds (None: until
        one comes), then raises :class:`improto.TimeoutError`."""
        deadline = deadline_of(check_timeout(timeout))
        with self._lock:
            return _ex.run(_chat_receive(self),
                           lambda _: self._stream.next_message(deadline, "waiting for a chat line"))

    def __iter__(self) -> Iterator[Any]:
        while True:
            line = self.receive()
            if line is None:
                return
            yield line

    def close(self) -> None:
        """Ends the chat (sends ``q`` if it is still on) and closes. Idempotent."""
        if self._closed:
            return
        if not self._ended:
            try:
                self._stream.send(_buddy.encode(_buddy.ChatQuit()), 1.0, "sending q")
            except Error:
                pass
        self._closed = True
        self._stream.close()

    def __enter__(self) -> "ChatSession":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "ended" if self.ended else "open"
        return f"<ChatSession {self.where} peer={self.peer!r} {state}>"


class ChatListener:
    """Takes direct chats on a TCP port, one at a time: while a chat is on
    (accepted or waiting to be), every other caller gets ``BUSY`` and is
    closed, as seed 002 says. A background thread accepts connections.

    Args:
        port: the port to listen on (0: a free one; see :attr:`port`), the
            ``msgport`` to announce with :meth:`BuddyClient.set_status`.
        host: the address to listen on.
        timeout: default seconds for the accepted sessions' sends.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1",
                 timeout: Optional[float] = 10.0) -> None:
        port = check_port(port, allow_zero=True)
        self.timeout = check_timeout(timeout)
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            err = transport_error(exc, f"chat listener {endpoint(host, port)}", "listening")
            if exc.errno == 98:
                err = AddressInUseError(str(err), errc="address_in_use")
            raise err from exc
        self.host, self.port = self._sock.getsockname()[:2]
        self._queue: "queue.Queue[ChatSession]" = queue.Queue()
        self._current: Optional[ChatSession] = None
        self._lock = threading.Lock()
        self.busy_answered = 0  # callers turned away with BUSY
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"improto ChatListener {self.port}")
        self._thread.start()

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, addr = self._sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                busy = self._closed or (self._current is not None and not self._current.ended)
                if not busy:
                    session = ChatSession(conn, f"chat caller {endpoint(addr[0], addr[1])}", self.timeout)
                    self._current = session
                    self._queue.put(session)
                    continue
                self.busy_answered += 1
            try:
                conn.settimeout(1.0)
                conn.sendall(_buddy.encode(_buddy.ChatBusy()))
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                conn.close()

    def accept(self, timeout: Optional[float] = None) -> ChatSession:
        """The next chat; its :attr:`ChatSession.peer` is the caller's name
        (read from ``CHAT name``). :class:`improto.TimeoutError` after
        ``timeout`` seconds (None: until a caller comes)."""
        timeout = check_timeout(timeout)
        deadline = deadline_of(timeout)
        try:
            session = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"chat listener {endpoint(self.host, self.port)}: no caller within "
                               f"{timeout} s", errc="timeout") from None
        # The hello names the caller; a caller that starts with text has no name.
        first = session._stream.next_message(deadline, "waiting for CHAT name")
        if isinstance(first, _buddy.ChatHello):
            session.peer = first.user
        else:
            session._first.append(first)
        return session

    def close(self) -> None:
        """Stops listening (chats already accepted go on). Idempotent."""
        with self._lock:
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._thread is not threading.current_thread():
            self._thread.join()
        while not self._queue.empty():
            self._queue.get_nowait().close()

    def __enter__(self) -> "ChatListener":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ChatListener {endpoint(self.host, self.port)}>"
