"""The blocking relay client (protocols 3 and 4): two TCP sockets registered
under one name, requests on the send socket, incoming events on the receive
socket."""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from . import relay as _relay
from . import _downloads
from . import _exchanges as _ex
from ._exchanges import Request, relay_error
from ._downloads import DownloadProgress, DownloadResult, PathLike, Progress
from ._errors import ConnectionClosedError, Error, TimeoutError
from ._net import Stream, check_port, check_timeout, connect, deadline_of, endpoint

__all__ = ["RelayClient", "Download", "DEFAULT_RELAY_PORT", "relay_error"]

DEFAULT_RELAY_PORT = 50000

Event = Any  # improto.relay.Forward | Joined | Left
Body = Union[bytes, bytearray, memoryview, str]


class _HangupWatch:
    """Notices at once when the server closes the send socket, and says so
    with ``on_hangup()`` (on the watch's thread). The blocking client reads
    that socket only while a request waits for its reply, so without this a
    download would learn of a dead server only from the transfer engine's
    30 s silence timeout. Waits in poll() (no GIL) for the peer's FIN or an
    error, never reading: replies stay for the request that reads them."""

    _HANGUP = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR

    def __init__(self, sock: Any, on_hangup: Callable[[], Any], name: str) -> None:
        self._wake_r, self._wake_w = os.pipe()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), self._HANGUP)
        self._poll.register(self._wake_r, select.POLLIN)
        self._on_hangup = on_hangup
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for fd, _ in self._poll.poll():
                if fd == self._wake_r:
                    return
                try:
                    self._on_hangup()
                except Exception:
                    sys.excepthook(*sys.exc_info())
                return

    def stop(self) -> None:
        """Ends the watch; call before the socket is closed (its number could be reused)."""
        os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)


class RelayClient:
    """A relay user: connects both sockets (send and receive) from one local
    address and registers ``name`` on each.

    Requests (:meth:`send`, :meth:`send_all`, :meth:`list_users`, ...) go
    on the send socket and return when the server's reply comes; they may be
    called from several threads (one at a time goes to the server).
    Incoming events (``improto.relay.Forward``, ``Joined``, ``Left``) arrive
    on the receive socket: take them with :meth:`receive` or
    :meth:`events`, or pass ``on_event`` to have them delivered on a
    background thread. Every FORWARD is answered ``RECEIVED`` by the client
    as it is taken, so a sender's :meth:`send` returns only once the
    receiver's program has it.

    Args:
        name: the user name (1-32 letters and digits).
        host, port: the relay server.
        timeout: seconds each call may take by default (connecting, a
            request and its reply); a call's own ``timeout=`` overrides it.
        on_event: called with each event on a background reader thread;
            :meth:`receive` and :meth:`events` are not available then.
        on_close: with ``on_event``: called once on the reader thread when
            the receive socket ends, with the exception that ended it (None
            after :meth:`close`).

    Errors: :class:`improto.TransportError` (refused, closed; the message
    names host:port), :class:`improto.TimeoutError`,
    :class:`improto.ProtocolError` (``ERROR 100`` bad name, ``ERROR 102``
    undeliverable... with ``.code``), :class:`improto.NameTakenError`
    (``ERROR 104``).

    Example::

        with improto.RelayClient("alice", port=relay.port) as alice:
            alice.send("bob", b"hi")
            for ev in alice.events(timeout=5):
                print(ev)
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = DEFAULT_RELAY_PORT,
                 timeout: Optional[float] = 10.0, *,
                 on_event: Optional[Callable[[Event], Any]] = None,
                 on_close: Optional[Callable[[Optional[BaseException]], Any]] = None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, not {type(name).__name__}")
        self.name = name
        self.host = host
        self.port = check_port(port)
        self.timeout = check_timeout(timeout)
        self._on_event = on_event
        self._on_close = on_close
        self._where = f"relay {endpoint(host, self.port)}"
        self._send: Optional[Stream] = None
        self._recv: Optional[Stream] = None
        self._request_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._skip = 0  # replies still owed to requests that timed out
        self._reader: Optional[threading.Thread] = None
        self._closed = False
        self._connected = False
        self._downloads: Dict[int, "Download"] = {}
        self._downloads_lock = threading.Lock()
        self._hangup_watch: Optional[_HangupWatch] = None  # from the first download on

    # ------------------------------------------------------------ lifetime

    def connect(self, timeout: Optional[float] = None) -> "RelayClient":
        """Connects both sockets and registers the name on each. Returns self."""
        if self._connected:
            raise Error(f"{self._where}: {self.name!r} is already connected", errc="invalid_argument")
        if self._closed:
            raise Error(f"{self._where}: the client is closed", errc="connection_closed")
        deadline = deadline_of(self._timeout(timeout))
        try:
            left = self._left(deadline)
            send_sock = connect(self.host, self.port, left, "relay")
            # The server pairs the two sockets by source address.
            local_ip = send_sock.getsockname()[0]
            self._send = Stream(send_sock, _relay.Decoder(direction=_relay.Direction.TO_CLIENT),
                                f"{self._where} (send socket)")
            recv_sock = connect(self.host, self.port, self._left(deadline), "relay", source=(local_ip, 0))
            self._recv = Stream(recv_sock, _relay.Decoder(direction=_relay.Direction.TO_CLIENT),
                                f"{self._where} (receive socket)")
            self._register(self._send, _relay.Role.TO_SEND, deadline)
            self._register(self._recv, _relay.Role.TO_RECV, deadline)
        except BaseException:
            self._close_streams()
            raise
        self._connected = True
        if self._on_event is not None:
            self._reader = threading.Thread(target=self._read_events, daemon=True,
                                            name=f"improto RelayClient {self.name} reader")
            self._reader.start()
        return self

    def _register(self, stream: Stream, role: Any, deadline: Optional[float]) -> None:
        def one(r: Request) -> Any:
            stream.send(r.data, self._left(deadline), r.doing)
            return stream.next_message(deadline, r.doing)
        _ex.run(_ex.relay_register(self.name, role, stream.where), one)

    def close(self) -> None:
        """Closes both sockets (the server unregisters the name). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._downloads_lock:
            running = list(self._downloads.values())
            watch, self._hangup_watch = self._hangup_watch, None
        for d in running:
            d._transfer.stop("the client was closed")
        if watch is not None:
            watch.stop()
        self._close_streams()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join()

    def _close_streams(self) -> None:
        for stream in (self._send, self._recv):
            if stream is not None:
                stream.close()

    def __enter__(self) -> "RelayClient":
        if not self._connected:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._connected else "not connected"
        return f"<RelayClient {self.name!r} {endpoint(self.host, self.port)} {state}>"

    # ------------------------------------------------------------ requests

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else check_timeout(timeout)

    @staticmethod
    def _left(deadline: Optional[float]) -> Optional[float]:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _stream(self, which: str) -> Stream:
        if self._closed:
            raise ConnectionClosedError(f"{self._where}: the client is closed", errc="connection_closed")
        if not self._connected:
            raise Error(f"{self._where}: not connected: call connect() or use 'with'",
                        errc="invalid_argument")
        stream = self._send if which == "send" else self._recv
        assert stream is not None
        return stream

    def _request(self, request: Request, timeout: Optional[float]) -> Any:
        """Sends one request on the send socket and returns its reply."""
        with self._request_lock:
            stream = self._stream("send")
            deadline = deadline_of(self._timeout(timeout))
            stream.send(request.data, self._left(deadline), request.doing)
            # Replies come in request order: drop those owed to timed-out calls.
            self._skip += 1
            while self._skip > 1:
                stream.next_message(deadline, request.doing)
                self._skip -= 1
            reply = stream.next_message(deadline, request.doing)
            self._skip -= 1
        return reply

    def _run(self, exchange: Any, timeout: Optional[float]) -> Any:
        return _ex.run(exchange, lambda r: self._request(r, timeout))

    def send(self, to: str, body: Body, timeout: Optional[float] = None) -> None:
        """Sends ``body`` to user ``to``; returns once the server answers SENT
        (the receiver acknowledged it). Raises :class:`improto.RejectedError`
        (a ProtocolError) with ``.code == 102`` when it cannot be delivered."""
        self._run(_ex.relay_send(to, body, self._where), timeout)

    def send_all(self, body: Body, timeout: Optional[float] = None) -> None:
        """Sends ``body`` to every other registered user (SEND ALL); returns
        once each acknowledged it (SENT ALL), raises ``.code == 102`` if any failed."""
        self._run(_ex.relay_send("ALL", body, self._where), timeout)

    def list_users(self, timeout: Optional[float] = None) -> List[str]:
        """Users online (registered on both sockets), sorted, every page."""
        return self._run(_ex.relay_list_users(self._where), timeout)

    def list_files(self, timeout: Optional[float] = None) -> List[Any]:
        """The server's files (``improto.relay.FileEntry``: name, size), every page."""
        return self._run(_ex.relay_list_files(self._where), timeout)

    def list_files_page(self, after: str = "", timeout: Optional[float] = None) -> Any:
        """One page of LIST FILES: the ``improto.relay.FileList`` reply
        (``.files``, ``.more``); the next page is the one ``after`` the last
        name of this one."""
        return self._run(_ex.relay_list_files_page(after, self._where), timeout)

    def subscribe_presence(self, timeout: Optional[float] = None) -> None:
        """From now on, ``Joined``/``Left`` events come with the messages."""
        self._run(_ex.relay_subscribe(self._where), timeout)

    def unsubscribe_presence(self, timeout: Optional[float] = None) -> None:
        """Stops the presence notices."""
        self._run(_ex.relay_unsubscribe(self._where), timeout)

    # ----------------------------------------------------------- downloads

    def download(self, name: str, directory: PathLike = ".",
                 progress: Optional[Progress] = None, *, rate_limit: float = 0,
                 timeout: Optional[float] = None) -> "Download":
        """Starts downloading the server's file ``name`` into ``directory``
        and returns its :class:`Download` handle once the server accepted
        (TRANSFER); ``handle.result()`` waits for the end.

        The bytes go to ``NAME.part`` (and the server's hash to
        ``NAME.part.sha256``); the file is renamed to ``NAME`` only when its
        SHA-256 matches the server's. A ``NAME.part`` left by an earlier
        attempt (this client or ``imrelay``) is resumed when the server
        still has the same file, else the download starts over.

        Args:
            name: the file's name, as :meth:`list_files` gives it.
            directory: where to write it (must exist).
            progress: called with a :class:`DownloadProgress` on the
                download's watcher thread: at the start, as bytes arrive
                (at most about 10 times a second), and once at 100%.
            rate_limit: bytes per second to take at most (0: as fast as the
                link goes).
            timeout: seconds for the server's answer.

        Raises: :class:`improto.NotFoundError` (no such file: ``ERROR 106``,
        or no such directory), :class:`improto.OverloadedError` (``ERROR
        109``: too many downloads), :class:`improto.Error` with errc
        ``invalid_argument`` (a bad name, or NAME already being downloaded).
        """
        rate = _downloads.check_rate(rate_limit)
        send = self._stream("send")
        local_ip, server_ip = _downloads.local_and_peer(send.sock.getsockname(), send.sock.getpeername())

        def one(step: _downloads.Step) -> Any:
            if isinstance(step, Request):
                return self._request(step, timeout)
            if isinstance(step, _downloads.Offload):
                return step()
            return self._begin(step, send)
        return _ex.run(_downloads.start(name, directory, self._where, local_ip, server_ip, rate,
                                        lambda f, *a: f(*a), progress, self._download_ended), one)

    def _begin(self, step: _downloads.Begin, send: Stream) -> "Download":
        handle = Download(self, step.transfer)
        with self._downloads_lock:
            self._downloads[handle.id] = handle
            if self._hangup_watch is None and not self._closed:
                self._hangup_watch = _HangupWatch(
                    send.sock, self._server_hung_up, f"improto RelayClient {self.name} hangup watch")
        try:
            step.start()
        except BaseException:
            with self._downloads_lock:
                self._downloads.pop(handle.id, None)
            raise
        return handle

    def _server_hung_up(self) -> None:
        # As the asyncio client does when its reply reader meets the end.
        with self._downloads_lock:
            running = list(self._downloads.values())
        for d in running:
            d._transfer.stop("the connection to the server ended (the server closed it)")

    def _download_ended(self, transfer: Any) -> None:
        with self._downloads_lock:
            if self._downloads.get(transfer.id) is not None and \
                    self._downloads[transfer.id]._transfer is transfer:
                del self._downloads[transfer.id]

    def downloads(self) -> List["Download"]:
        """The downloads running now."""
        with self._downloads_lock:
            return list(self._downloads.values())

    # -------------------------------------------------------------- events

    def _next_event(self, stream: Stream, deadline: Optional[float]) -> Event:
        ev, answer = _ex.relay_event(stream.next_message(deadline, _ex.EVENTS_DOING), stream.where)
        if answer:
            stream.send(answer, self.timeout, _ex.RECEIVED_DOING)
        return ev

    def receive(self, timeout: Optional[float] = None) -> Event:
        """The next event: ``improto.relay.Forward`` (``from_``, ``body``;
        already answered RECEIVED), ``Joined`` or ``Left`` (``user``). Waits
        at most ``timeout`` seconds (None: until one comes), then raises
        :class:`improto.TimeoutError`; raises
        :class:`improto.ConnectionClosedError` when the socket is closed."""
        if self._on_event is not None:
            raise Error(f"{self._where}: events go to on_event; receive() is not available",
                        errc="invalid_argument")
        timeout = check_timeout(timeout)
        with self._recv_lock:
            return self._next_event(self._stream("recv"), deadline_of(timeout))

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterates over incoming events; the iteration ends when no event
        came for ``timeout`` seconds (None: never) or when the client is
        closed; other errors (the server closing) are raised."""
        while True:
            try:
                yield self.receive(timeout)
            except Error as exc:
                if _ex.ends_events(exc, self._closed):
                    return
                raise

    def _read_events(self) -> None:
        stream = self._recv
        assert stream is not None and self._on_event is not None
        why: Optional[BaseException] = None
        while True:
            try:
                ev = self._next_event(stream, None)
            except BaseException as exc:  # the socket ended
                why = None if self._closed else exc
                break
            try:
                self._on_event(ev)
            except Exception:  # a failing callback must not stop the next events
                sys.excepthook(*sys.exc_info())
        if self._on_close is not None:
            try:
                self._on_close(why)
            except Exception:
                sys.excepthook(*sys.exc_info())



class Download(_downloads.DownloadHandle):
    """A running download of :meth:`RelayClient.download`.

    Attributes: ``id`` (the server's transfer id), ``file`` (its name),
    ``path`` (where it goes), ``size``, ``sha256`` (the server's hash),
    ``offset`` (resumed from; 0 for a whole download).

    :meth:`pause`, :meth:`resume` and :meth:`cancel` send PAUSE, RESUME and
    CANCEL on the client's send socket (and hold, release or abort the UDP
    side); :attr:`progress` is the latest :class:`DownloadProgress`;
    :meth:`result` waits for the end and returns the
    :class:`DownloadResult` or raises: :class:`improto.IntegrityError` (the
    SHA-256 differs from the server's; the part file is removed),
    :class:`improto.CancelledError` (cancelled; the part file is removed),
    :class:`improto.TimeoutError` (the server went silent),
    :class:`improto.ConnectionClosedError` (the client was closed, or the
    server closed the connection: noticed at once, as the asyncio client
    does) - the last two keep ``NAME.part`` for a later
    :meth:`RelayClient.download`.
    """

    def __init__(self, client: RelayClient, transfer: Any) -> None:
        super().__init__(transfer)
        self._client = client

    def pause(self, timeout: Optional[float] = None) -> None:
        """PAUSE: the server stops sending until :meth:`resume`. Raises
        :class:`improto.NotFoundError` (``ERROR 107``) when the transfer is over."""
        self._transfer.core.pause()
        self._transfer.set_paused(True)
        self._client._run(_ex.relay_pause(self.id, self._client._where), timeout)

    def resume(self, timeout: Optional[float] = None) -> None:
        """RESUME: the transfer goes on where it stopped."""
        self._client._run(_ex.relay_resume(self.id, self._client._where), timeout)
        self._transfer.set_paused(False)
        self._transfer.core.resume()

    def cancel(self, timeout: Optional[float] = None) -> None:
        """CANCEL: stops the download and removes its part file; returns once
        it ended (:meth:`result` then raises :class:`improto.CancelledError`).
        Does nothing to a download that already ended."""
        if self.done():
            return
        self._transfer.cancelling = True
        self._transfer.core.cancel()
        # ERROR 107 is fine: our ABORT ended it on the server first.
        self._client._run(_ex.relay_cancel(self.id, self._client._where), timeout)
        self.wait(self._client._timeout(timeout))

    def done(self) -> bool:
        """True once the download ended (finished, failed or cancelled)."""
        return self._transfer.done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to ``timeout`` seconds (None: no limit) for the end; True if it ended."""
        return self._transfer.done.wait(check_timeout(timeout))

    def result(self, timeout: Optional[float] = None) -> DownloadResult:
        """Waits for the end (``timeout`` seconds, None: no limit) and returns
        the :class:`DownloadResult`, or raises the download's error
        (:class:`improto.TimeoutError` also when ``timeout`` passed first)."""
        if not self.wait(timeout):
            raise TimeoutError(f"{self._client._where}: download {self.id} of {self.file!r} "
                               f"not finished after {timeout} s", errc="timeout")
        return self._transfer.outcome()
