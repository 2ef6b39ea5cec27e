"""Downloads (protocol 4) shared by the blocking and the asyncio relay
clients. The client speaks the TCP side (DOWNLOAD -> TRANSFER, PAUSE,
RESUME, CANCEL); the UDP side runs in the C++ library (``_core._Download``:
the transfer engine and NAME.part) on the package's download thread, which
never runs Python code. A watcher thread per download waits on it without
the GIL and hands progress and the outcome over with ``deliver`` (a direct
call for the blocking client, ``loop.call_soon_threadsafe`` for asyncio).

On disk, like ``imrelay``: NAME.part holds the verified prefix, and
NAME.part.sha256 (``"<size> <sha256>\\n"``) the server's file it belongs to,
so either tool resumes the other's partial download.

How a download starts (DOWNLOAD, the resume decision, a second attempt
from 0 when the file changed on the server, giving a transfer up) is
:func:`start`, a sans-I/O generator like those of ``_exchanges`` that both
clients drive."""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time
from typing import Any, Callable, Deque, Generator, NamedTuple, Optional, Set, Tuple, Union

from . import _core
from . import _exchanges as _ex
from . import relay as _relay
from ._errors import CancelledError, ConfigError, Error, NotFoundError, TransportError

__all__ = ["DownloadProgress", "DownloadResult", "Progress"]

PathLike = Union[str, "os.PathLike[str]"]

# Watcher: wake at most this often while bytes flow (progress callbacks per second ~ 1/this).
_PROGRESS_GAP = 0.1
_RATE_WINDOW = 2.0  # seconds of samples behind the rate


class DownloadProgress(NamedTuple):
    """Where a download stands (passed to the ``progress`` callback).

    Attributes:
        id: the server's transfer id.
        file: the file's name on the server.
        bytes: bytes stored in NAME.part so far (counting a resumed prefix).
        total: the file's size.
        start: the offset the transfer started at (the resumed prefix).
        rate: bytes per second over the last seconds (0 while paused).
        paused: True between pause() and resume().
    """

    id: int
    file: str
    bytes: int
    total: int
    start: int
    rate: float
    paused: bool

    @property
    def percent(self) -> float:
        """0 to 100 (100 for an empty file)."""
        return 100.0 if self.total == 0 else 100.0 * self.bytes / self.total

    @property
    def eta(self) -> Optional[float]:
        """Seconds left at the current rate; None while unknown (no rate yet, paused)."""
        if self.bytes >= self.total:
            return 0.0
        return (self.total - self.bytes) / self.rate if self.rate > 0 else None


Progress = Callable[[DownloadProgress], Any]


class DownloadResult(NamedTuple):
    """A finished download: the file is at ``path``, its SHA-256 checked.

    Attributes:
        file: the name on the server.
        path: where it was written (DIR/NAME).
        size: its size in bytes.
        sha256: its SHA-256, 64 lower-case hex digits (equal to the server's).
        resumed_from: 0 when downloaded whole, else the offset resumed at.
        last_offset: the offset of the last byte (``size - 1``), None for an
            empty file - seed 001's "last byte value sent".
        last_byte: that byte's value as the server's end of transfer gave it
            (0 for an empty file).
    """

    file: str
    path: str
    size: int
    sha256: str
    resumed_from: int
    last_offset: Optional[int]
    last_byte: int


# NAME paths being downloaded in this process: two downloads into one
# NAME.part would interleave their bytes.
_targets: Set[str] = set()
_targets_lock = threading.Lock()


def _read_meta(path: str) -> Optional[Tuple[int, str]]:
    try:
        with open(path, encoding="ascii") as f:
            size_text, sha = f.read(200).split()[:2]
        size = int(size_text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return (size, sha) if size >= 0 and len(sha) == 64 else None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: a stale file is found again on the next attempt


class Plan:
    """One download's files and the resume decision, without I/O to the
    server: the clients drive it around their DOWNLOAD requests."""

    def __init__(self, name: str, directory: PathLike, where: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, not {type(name).__name__}")
        if not _relay.valid_file_name(name):
            raise ConfigError(f"{where}: {name!r} is not a valid file name (1-255 bytes, "
                              "no '/', no control characters, no blanks at either end)",
                              errc="invalid_argument")
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise NotFoundError(f"{where}: download of {name!r}: {directory!r} is not a directory",
                                errc="not_found")
        self.name = name
        self.where = where
        self.final = os.path.join(directory, name)
        self.part = self.final + ".part"
        self.meta = self.final + ".part.sha256"
        self._target = os.path.normpath(os.path.abspath(self.final))
        with _targets_lock:
            if self._target in _targets:
                raise Error(f"{where}: download of {name!r}: {self.final} is being downloaded already",
                            errc="invalid_argument")
            _targets.add(self._target)
        self._claimed = True
        self.known: Optional[Tuple[int, str]] = None

    def release(self) -> None:
        if self._claimed:
            self._claimed = False
            with _targets_lock:
                _targets.discard(self._target)

    def offset(self, attempt: int) -> int:
        """The Offset to ask for: the .part's length when its server hash is known."""
        self.known = _read_meta(self.meta)
        if self.known is None or attempt > 0:
            return 0
        try:
            have = os.path.getsize(self.part)
        except OSError:
            return 0
        return have if have <= self.known[0] else 0

    def accept(self, core: Any, tr: Any, offset: int) -> bool:
        """After TRANSFER: True when the part file is ready at tr.offset;
        False when this transfer must be dropped and asked for again from 0
        (the file changed on the server since the .part was written).
        Raises when the files cannot be written."""
        same = self.known is not None and self.known == (tr.size, tr.sha256)
        if offset > 0 and not same:
            _remove(self.part)
            _remove(self.meta)
            return False
        if not same:
            _remove(self.part)  # a .part without its server hash beside it is not trusted
        try:
            with open(self.meta, "w", encoding="ascii") as f:
                f.write(f"{tr.size} {tr.sha256}\n")
        except OSError as exc:
            raise TransportError(f"{self.where}: download of {self.name!r}: cannot write "
                                 f"{self.meta}: {exc.strerror or exc}", errc="io_error") from exc
        have = core.open_part(self.final, tr.size)
        if have != tr.offset:
            _remove(self.part)
            return False
        return True

    def changing(self) -> Error:
        return TransportError(f"{self.where}: download of {self.name!r}: the file kept changing "
                              "on the server; try again", errc="io_error")


def not_found(exc: Error, plan: Plan) -> Error:
    """ERROR 106 as the user reads it."""
    if exc.code == 106:
        return NotFoundError(f"{plan.where}: the server has no file named {plan.name!r} "
                             f"(ERROR 106)", errc="not_found", detail=exc.detail, code=106)
    return exc


class Transfer:
    """A started download: its watcher thread, progress and outcome. The
    clients wrap it in their Download handles."""

    def __init__(self, core: Any, plan: Plan, tr: Any, deliver: Callable[..., Any],
                 progress: Optional[Progress], finished: Callable[["Transfer"], Any]) -> None:
        self.core = core
        self.plan = plan
        self.id: int = tr.id
        self.size: int = tr.size
        self.offset: int = tr.offset
        self.sha256: str = tr.sha256
        self.paused = False
        self.cancelling = False
        self._deliver = deliver
        self._progress_cb = progress
        self._finished = finished
        self._samples: Deque[Tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()  # samples and progress: the watcher and the caller
        self.progress = DownloadProgress(self.id, plan.name, tr.offset, tr.size, tr.offset, 0.0, False)
        self.result: Optional[DownloadResult] = None
        self.error: Optional[Error] = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name=f"improto download {self.id} {plan.name}")

    def start(self, server_host: str, server_port: int) -> None:
        self.core.start(server_host, server_port, self.id, self.size, self.offset, self.sha256)
        self._thread.start()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self.paused = paused
            self._samples.clear()  # the rate starts over
            self.progress = self.progress._replace(paused=paused, rate=0.0)

    def _snapshot(self, received: int) -> DownloadProgress:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, received))
        while len(samples) > 2 and now - samples[0][0] > _RATE_WINDOW:
            samples.popleft()
        rate = 0.0
        if not self.paused and len(samples) >= 2 and samples[-1][0] - samples[0][0] > 0.05:
            rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        return DownloadProgress(self.id, self.plan.name, received, self.size, self.offset, rate,
                                self.paused)

    def _emit(self, received: int) -> None:
        with self._lock:
            self.progress = progress = self._snapshot(received)
        if self._progress_cb is not None:
            self._deliver(self._call_progress, progress)

    def _call_progress(self, p: DownloadProgress) -> None:
        try:
            self._progress_cb(p)  # type: ignore[misc]
        except Exception:  # a failing callback must not end the download
            sys.excepthook(*sys.exc_info())

    def _watch(self) -> None:
        seen, last = 0, -1
        self._emit(self.offset)
        while True:
            seen, received, done = self.core.wait(seen, 1.0, _PROGRESS_GAP)
            if done:
                break
            if received != last:
                last = received
                self._emit(received)
        try:
            sha, last_byte = self.core.outcome()
        except Error as exc:
            self._end_failed(exc)
        else:
            _remove(self.plan.meta)
            self._emit(self.size)
            self.result = DownloadResult(
                self.plan.name, self.plan.final, self.size, sha, self.offset,
                self.size - 1 if self.size > 0 else None, last_byte)
        self.plan.release()
        self.done.set()
        self._deliver(self._finished, self)

    def _end_failed(self, exc: Error) -> None:
        name, where = self.plan.name, self.plan.where
        errc = exc.errc
        if errc == "cancelled" or self.cancelling:
            _remove(self.plan.part)
            _remove(self.plan.meta)
            why = "cancelled at the user's request" if self.cancelling else f"cancelled by the server ({exc})"
            self.error = CancelledError(f"{where}: download {self.id} of {name!r} {why}",
                                        errc="cancelled", detail=exc.detail)
            return
        if errc == "hash_mismatch":
            _remove(self.plan.meta)  # the part file is gone too: its bytes were not the file's
            message = f"{where}: download {self.id} of {name!r} failed the SHA-256 check: {exc}"
        else:
            kept = os.path.exists(self.plan.part)
            message = (f"{where}: download {self.id} of {name!r} interrupted at "
                       f"{self.progress.bytes} of {self.size} bytes: {exc}"
                       + (f" ({os.path.basename(self.plan.part)} is kept: downloading it again "
                          "resumes)" if kept else ""))
        self.error = type(exc)(message, errc=errc, detail=exc.detail, code=exc.code)

    def outcome(self) -> DownloadResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def stop(self, reason: str) -> None:
        """The client is closing: end the download, keep NAME.part."""
        if not self.done.is_set():
            self.core.close("connection_closed", reason)


class Offload(NamedTuple):
    """A step of :func:`start`: a blocking call (it hashes what NAME.part
    holds) that the asyncio client runs off the loop; sent its result."""

    fn: Callable[..., Any]
    args: Tuple[Any, ...]

    def __call__(self) -> Any:
        return self.fn(*self.args)


class Begin(NamedTuple):
    """The last step of :func:`start`: the server accepted and NAME.part is
    ready. The client wraps ``transfer`` in its Download handle, keeps it
    (before the watcher can report its end), calls :meth:`start` and is
    sent the handle; whatever it raises is thrown back into the generator,
    which gives the transfer up."""

    transfer: Transfer
    server: Tuple[str, int]

    def start(self) -> None:
        self.transfer.start(*self.server)


Step = Union[_ex.Request, Offload, Begin]


def give_up(core: Any, tid: int, where: str) -> "Generator[Step, Any, None]":
    """Ends a transfer the client will not take: the UDP side at once, then
    CANCEL (a failure is ignored: the server forgets it after its timeout)."""
    core.close("connection_closed", "given up")
    try:
        yield from _ex.relay_cancel(tid, where)
    except Error:
        pass


def start(name: str, directory: PathLike, where: str, local_ip: str, server_ip: str,
          rate: float, deliver: Callable[..., Any], progress: Optional[Progress],
          finished: Callable[[Transfer], Any]) -> "Generator[Step, Any, Any]":
    """A download up to its running Download handle (the return value).
    Yields the steps the client performs: a :class:`improto._exchanges.Request`
    on the send socket (sent the reply), an :class:`Offload` and a
    :class:`Begin`. The client throws its failures (timeouts, a closed
    connection, cancellation) into the generator, which cleans up and
    re-raises. ``deliver``, ``progress`` and ``finished`` go to the
    :class:`Transfer`."""
    plan = Plan(name, directory, where)
    try:
        for attempt in range(2):
            offset = plan.offset(attempt)
            core = new_core(local_ip, rate)
            try:
                tr = yield from _ex.relay_download(name, core.udp_port, offset, where)
            except Error as exc:
                core.close("connection_closed", "no transfer")
                raise not_found(exc, plan) from None
            except BaseException:
                core.close("connection_closed", "no transfer")
                raise
            try:
                if (yield Offload(plan.accept, (core, tr, offset))):
                    transfer = Transfer(core, plan, tr, deliver, progress, finished)
                    return (yield Begin(transfer, (server_ip, tr.udp_port)))
            except BaseException:
                yield from give_up(core, tr.id, where)
                raise
            yield from give_up(core, tr.id, where)  # the file changed: again from 0
        raise plan.changing()
    except BaseException:
        plan.release()
        raise


class DownloadHandle:
    """What :class:`improto.Download` and :class:`improto.aio.Download` share:
    the transfer's identity and its latest progress."""

    _kind = "Download"

    def __init__(self, transfer: Any) -> None:
        self._transfer = transfer
        self.id: int = transfer.id
        self.file: str = transfer.plan.name
        self.path: str = transfer.plan.final
        self.size: int = transfer.size
        self.sha256: str = transfer.sha256
        self.offset: int = transfer.offset

    def done(self) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        p = self.progress
        state = "done" if self.done() else "paused" if p.paused else "running"
        return f"<{self._kind} {self.id} {self.file!r} {p.bytes}/{p.total} {state}>"

    @property
    def progress(self) -> DownloadProgress:
        """The latest progress (as the callback last saw it)."""
        return self._transfer.progress

    @property
    def paused(self) -> bool:
        return self._transfer.paused


def local_and_peer(sockname: Any, peername: Any) -> Tuple[str, str]:
    return str(sockname[0]), str(peername[0])


def check_rate(rate_limit: Any) -> float:
    try:
        value = float(rate_limit)
    except (TypeError, ValueError):
        raise ConfigError(f"rate_limit: expected bytes per second, not {rate_limit!r}",
                          errc="invalid_config") from None
    if not 0 <= value < 1e15:
        raise ConfigError(f"rate_limit: expected bytes per second (0: no limit), not {rate_limit!r}",
                          errc="invalid_config")
    return value


_shutdown_registered = False


def new_core(local_ip: str, rate_limit: float) -> Any:
    global _shutdown_registered
    if not _shutdown_registered:
        _shutdown_registered = True
        # The download thread ends before the C runtime's exit handlers.
        atexit.register(_core._downloads_shutdown)
    return _core._Download(local_ip, rate_limit)
