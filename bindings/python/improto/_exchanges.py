"""The request/reply logic of every client, once, for the blocking clients
and the asyncio ones (improto.aio): what bytes a call sends, what answer it
expects, how an answer becomes a result or an exception, how pages follow
each other. No I/O here.

An exchange is a generator: it yields a :class:`Request` and is sent the
decoded reply; its return value is the call's result. The clients only move
bytes, with :func:`run` (blocking) or :func:`run_async` (asyncio):

    def list_users(self, timeout=None):
        return run(relay_list_users(self._where), lambda r: self._request(r, timeout))
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Generator, List, NamedTuple, Optional, TypeVar, Union

from . import buddy as _buddy
from . import registry as _reg
from . import relay as _relay
from ._errors import (
    ConnectionClosedError,
    Error,
    NameTakenError,
    NotFoundError,
    OverloadedError,
    ProtocolError,
    RejectedError,
)

T = TypeVar("T")
Text = Union[bytes, bytearray, memoryview, str]


class Request(NamedTuple):
    """One request of an exchange: its bytes, and what it is doing (for errors)."""

    data: bytes
    doing: str


Exchange = Generator[Request, Any, T]


def run(exchange: "Exchange[T]", one: Callable[[Any], Any]) -> T:
    """Drives an exchange with a blocking ``one(request) -> reply``; what
    ``one`` raises is thrown into the exchange (its cleanup may send more)."""
    try:
        request = next(exchange)
        while True:
            try:
                reply = one(request)
            except BaseException as exc:
                request = exchange.throw(exc)
            else:
                request = exchange.send(reply)
    except StopIteration as done:
        return done.value


async def run_async(exchange: "Exchange[T]", one: Callable[[Any], Awaitable[Any]]) -> T:
    """Drives an exchange with ``await one(request) -> reply``, as :func:`run`."""
    try:
        request = next(exchange)
        while True:
            try:
                reply = await one(request)
            except BaseException as exc:
                request = exchange.throw(exc)
            else:
                request = exchange.send(reply)
    except StopIteration as done:
        return done.value


def as_bytes(text: Text, what: str = "text") -> bytes:
    """str (UTF-8) or a bytes-like object -> bytes."""
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"{what}: expected bytes or str, not {type(text).__name__}")


def answered(table: Any, code: int, line: str, where: str, doing: str,
             detail: Optional[str] = None, tail: str = "") -> Error:
    """The exception for an error answer `line` to `doing`: its class and
    errc from the protocol's `table` (code -> (class, errc)); RejectedError
    for a code the table does not know."""
    cls, errc = table.get(code, (RejectedError, "rejected"))
    return cls(f"{where}: {doing}: the server answered {line}{tail}", errc=errc,
               detail=line if detail is None else detail, code=code)


def unexpected(where: str, doing: str, reply: Any) -> ProtocolError:
    return ProtocolError(f"{where}: {doing}: unexpected answer {reply!r}", errc="invalid_argument")


# ------------------------------------------------------------------- relay

# ERROR code -> (class, errc): relay/codes.hpp from_wire().
_RELAY_ERROR = {
    100: (ProtocolError, "invalid_name"),
    104: (NameTakenError, "name_taken"),
    106: (NotFoundError, "not_found"),
    107: (NotFoundError, "not_found"),
    109: (OverloadedError, "overloaded"),
}


def relay_error(reply: Any, where: str, doing: str) -> Error:
    """The exception for an ERROR reply received while `doing` something."""
    return answered(_RELAY_ERROR, reply.code, f"ERROR {reply.code} {reply.text}".rstrip(), where, doing)


def relay_call(message: Any, expected: type, where: str, doing: str) -> "Exchange[Any]":
    """One relay request: the reply of class `expected`, ERROR raised."""
    reply = yield Request(_relay.encode(message), doing)
    if isinstance(reply, _relay.ErrorReply):
        raise relay_error(reply, where, doing)
    if not isinstance(reply, expected):
        raise unexpected(where, doing, reply)
    return reply


def relay_register(name: str, role: Any, where: str) -> "Exchange[None]":
    yield from relay_call(_relay.RegisterRequest(role=role, user=name), _relay.Registered, where,
                          f"registering {name!r}")


def relay_send(to: str, body: Text, where: str) -> "Exchange[None]":
    """SEND (to "ALL": SEND ALL); returns once SENT came."""
    doing = "SEND ALL" if to == "ALL" else f"SEND to {to!r}"
    yield from relay_call(_relay.Send(to=to, body=as_bytes(body, "body")), _relay.Sent, where, doing)


def relay_list_users(where: str) -> "Exchange[List[str]]":
    """LIST USERS, every page."""
    users: List[str] = []
    after = ""
    while True:
        reply = yield from relay_call(_relay.ListUsers(after=after), _relay.UserList, where, "LIST USERS")
        users.extend(reply.users)
        if not reply.more or not reply.users:
            return users
        after = reply.users[-1]


def relay_list_files_page(after: str, where: str) -> "Exchange[Any]":
    """One page of LIST FILES: the FileList reply."""
    doing = f"LIST FILES after {after!r}" if after else "LIST FILES"
    return (yield from relay_call(_relay.ListFiles(after=after), _relay.FileList, where, doing))


def relay_list_files(where: str) -> "Exchange[List[Any]]":
    """LIST FILES, every page."""
    files: List[Any] = []
    after = ""
    while True:
        reply = yield from relay_call(_relay.ListFiles(after=after), _relay.FileList, where, "LIST FILES")
        files.extend(reply.files)
        if not reply.more or not reply.files:
            return files
        after = reply.files[-1].name


def relay_subscribe(where: str) -> "Exchange[None]":
    yield from relay_call(_relay.Subscribe(), _relay.Subscribed, where, "SUBSCRIBE PRESENCE")


def relay_unsubscribe(where: str) -> "Exchange[None]":
    yield from relay_call(_relay.Unsubscribe(), _relay.Unsubscribed, where, "UNSUBSCRIBE PRESENCE")


def relay_download(name: str, udp_port: int, offset: int, where: str) -> "Exchange[Any]":
    """DOWNLOAD: the TRANSFER reply."""
    return (yield from relay_call(_relay.Download(file=name, udp_port=udp_port, offset=offset),
                                  _relay.Transfer, where, f"DOWNLOAD {name!r}"))


def relay_pause(tid: int, where: str) -> "Exchange[None]":
    yield from relay_call(_relay.Pause(id=tid), _relay.Paused, where, f"PAUSE {tid}")


def relay_resume(tid: int, where: str) -> "Exchange[None]":
    yield from relay_call(_relay.Resume(id=tid), _relay.Resumed, where, f"RESUME {tid}")


def relay_cancel(tid: int, where: str) -> "Exchange[None]":
    """CANCEL; ERROR 107 (the transfer ended already) is not an error."""
    try:
        yield from relay_call(_relay.Cancel(id=tid), _relay.Cancelled, where, f"CANCEL {tid}")
    except Error as exc:
        if exc.code != 107:
            raise


RECEIVED_DOING = "answering RECEIVED"
EVENTS_DOING = "waiting for messages"


def ends_events(exc: Error, closed: bool) -> bool:
    """Whether events() ends quietly on `exc`: a timeout (no event came),
    or the connection closed because the client was; else it is raised."""
    if isinstance(exc, ConnectionClosedError):
        return closed
    return exc.errc == "timeout"


def relay_event(ev: Any, where: str) -> "tuple[Any, bytes]":
    """A message of the receive socket -> (the event, the bytes to answer
    with: RECEIVED for a FORWARD, else b""); an ERROR (101: the pairing
    timed out) or anything else is raised."""
    if isinstance(ev, _relay.Forward):
        return ev, _relay.encode(_relay.Received(from_=ev.from_))
    if isinstance(ev, (_relay.Joined, _relay.Left)):
        return ev, b""
    if isinstance(ev, _relay.ErrorReply):
        raise relay_error(ev, where, EVENTS_DOING)
    raise ProtocolError(f"{where}: unexpected message {ev!r}", errc="unknown_command")


# ---------------------------------------------------------------- registry

REGISTRY_TARGET = "/userlist.txt"

_HTTP_ERROR = {
    400: (ProtocolError, "invalid_argument"),
    403: (RejectedError, "rejected"),
    404: (NotFoundError, "not_found"),
    406: (NameTakenError, "name_taken"),
    503: (OverloadedError, "overloaded"),
}


def http_error(response: Any, where: str, doing: str) -> Error:
    """The exception for an HTTP error status received while `doing` something."""
    body = bytes(response.body).decode("utf-8", "replace").strip()
    return answered(_HTTP_ERROR, response.status, f"{response.status} {response.reason}".rstrip(),
                    where, doing, detail=body, tail=f": {body}" if body else "")


def registry_command(kind: Any, user: str, host: str, port: int, server_host: str,
                     where: str) -> "Exchange[None]":
    """POST REGISTER/LOGOUT user@host:port; 200 or the status raised."""
    body = _reg.encode(_reg.Command(kind=kind, entry=_reg.Entry(user=user, host=host, port=port)))
    verb = "REGISTER" if kind == _reg.CommandKind.REGISTER else "LOGOUT"
    doing = f"{verb} {body.decode('utf-8', 'replace').split(' ', 1)[-1]}"
    response = yield Request(_reg.encode(_reg.make_request("POST", REGISTRY_TARGET, server_host, body)),
                             doing)
    if response.status != 200:
        raise http_error(response, where, doing)


def registry_users(server_host: str, where: str) -> "Exchange[List[Any]]":
    """GET /userlist.txt: the entries; [] for the registry's "no online users" (400)."""
    doing = f"GET {REGISTRY_TARGET}"
    response = yield Request(_reg.encode(_reg.make_request("GET", REGISTRY_TARGET, server_host, b"")),
                             doing)
    if response.status == 400:
        return []
    if response.status != 200:
        raise http_error(response, where, doing)
    try:
        return list(_reg.parse_list(response.body).entries)
    except ProtocolError as exc:
        exc.args = (f"{where}: {doing}: bad user list: {exc.message}",)
        raise


# ------------------------------------------------------------------- buddy

_BUDDY_ERROR = {
    201: (ProtocolError, "invalid_argument"),
    202: (NotFoundError, "not_found"),
    203: (NameTakenError, "name_taken"),
}


def buddy_error(response: Any, where: str, doing: str) -> Error:
    """The exception for a buddy error line (201, 202, 203...) received while `doing`."""
    return answered(_BUDDY_ERROR, response.code, f"{response.code} {response.text}".rstrip(), where,
                    doing)


def buddy_command(request: Any, where: str) -> "Exchange[None]":
    """REG/ADD/DEL (one TCP connection each): 200 or the code raised."""
    if isinstance(request, _buddy.RegisterRequest):
        doing = f"REG {request.user}"
    elif isinstance(request, _buddy.AddRequest):
        doing = f"ADD {request.user} {request.buddy}"
    else:
        doing = f"DEL {request.user} {request.buddy}"
    response = yield Request(_buddy.encode(request), doing)
    if response.code != 200:
        raise buddy_error(response, where, doing)


def buddy_set(user: str, online: bool, msgport: int) -> bytes:
    """The SET datagram (no answer comes)."""
    status = _buddy.Presence.ONLINE if online else _buddy.Presence.OFFLINE
    return _buddy.encode(_buddy.SetRequest(user=user, status=status, msgport=msgport))


def buddy_get(user: str, attempts: int) -> Request:
    """The GET datagram (sent up to `attempts` times: UDP)."""
    if attempts < 1:
        raise ValueError("attempts: expected at least 1")
    return Request(_buddy.encode(_buddy.GetRequest(user=user)), f"GET {user}")


def buddy_statuses(data: bytes, where: str, doing: str) -> List[Any]:
    """A GET's answer datagram -> the buddies' entries, or the error raised."""
    try:
        reply = _buddy.parse_status_reply(data)
    except ProtocolError as exc:
        exc.args = (f"{where}: {doing}: bad reply: {exc.message}",)
        raise
    if isinstance(reply, _buddy.Response):
        raise buddy_error(reply, where, doing)
    return list(reply.buddies)
