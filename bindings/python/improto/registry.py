"""Protocol 1 (the registry of seed 001): HTTP/1.1, its payloads, peer datagrams.

Sans-I/O. The HTTP subset: :class:`Request` and :class:`Response` with
:class:`RequestDecoder` (a server's view) and :class:`ResponseDecoder` (a
client's); the payloads a registry carries, parsed whole: :class:`Entry`
(``name@host:port``), :class:`Command` (a POST body ``REGISTER entry`` /
``LOGOUT entry``), :class:`UserList` (the ``GET /userlist.txt`` answer); and
:class:`PeerMessage`, the UDP datagram between peers (``sender: text``)::

    >>> from improto import registry
    >>> d = registry.RequestDecoder()
    >>> [r] = d.feed(b"GET /userlist.txt HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    >>> r.method, r.target, r.header("host")
    ('GET', '/userlist.txt', 'x')
    >>> registry.parse_list(b"bob@1.2.3.4:5,")
    list count=1 entry="bob@1.2.3.4:5"
    >>> registry.encode(registry.PeerMessage(sender="bob", text=b"hi"))
    b'bob: hi'

Names, hosts, methods, targets and headers are ``str``; bodies and peer
texts ``bytes``. Errors raise :class:`improto.ProtocolError` subclasses with
``.code`` = the HTTP status a server answers that input with.
"""

from ._core.registry import (
    MAX_DATAGRAM_SIZE,
    Command,
    CommandKind,
    Entry,
    PeerMessage,
    Request,
    RequestDecoder,
    Response,
    ResponseDecoder,
    UserList,
    describe,
    encode,
    error_from_status,
    make_request,
    make_response,
    parse_command,
    parse_entry,
    parse_list,
    parse_peer_datagram,
    parse_peer_message,
    reason_phrase,
    status_for,
    status_has_body,
    valid_user,
)

#: Every message class (what :func:`encode` takes).
MESSAGE_TYPES = (Request, Response, Entry, Command, UserList, PeerMessage)

__all__ = [
    "Request", "Response", "RequestDecoder", "ResponseDecoder", "Entry", "Command",
    "CommandKind", "UserList", "PeerMessage", "MESSAGE_TYPES",
    "encode", "describe", "parse_entry", "parse_command", "parse_list", "parse_peer_message",
    "parse_peer_datagram", "make_request", "make_response", "reason_phrase", "status_has_body",
    "valid_user", "error_from_status", "status_for", "MAX_DATAGRAM_SIZE",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
