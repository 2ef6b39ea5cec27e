"""Protocol 2 (seed 002): buddy lists and status, and the direct buddy chat.

Sans-I/O. TCP requests to the server (:class:`RegisterRequest` ``REG``,
:class:`AddRequest` ``ADD``, :class:`DeleteRequest` ``DEL``) and its one-line
:class:`Response` (``200 OK``, ``201 INVALID``, ``202 NO SUCH USER``,
``203 USER EXISTS``); UDP datagrams :class:`SetRequest` / :class:`GetRequest`
and the GET reply (:class:`BuddyList` of :class:`BuddyEntry`, or a
:class:`Response`); and the chat between buddies (:class:`ChatHello`,
:class:`ChatText`, :class:`ChatQuit`, :class:`ChatBusy`)::

    >>> from improto import buddy
    >>> buddy.encode(buddy.SetRequest(user="alice", status=buddy.Presence.ONLINE, msgport=4000))
    b'SET alice 100 4000'
    >>> buddy.parse_status_reply(b"bob 100 1.2.3.4 4000\\n")
    buddies n=1 id="bob" status=online ip="1.2.3.4" port=4000
    >>> buddy.ResponseDecoder().feed(b"200 OK\\n203 USER EXISTS\\n")
    [response code=200 text="OK", response code=203 text="USER EXISTS"]

Userids and response texts are ``str``; chat lines ``bytes``. Errors raise
:class:`improto.ProtocolError` subclasses with ``.code`` = the response code
a server answers that input with (201), or None.
"""

from ._core.buddy import (
    DEFAULT_TCP_PORT,
    DEFAULT_UDP_PORT,
    MAX_DATAGRAM,
    AddRequest,
    BuddyEntry,
    BuddyList,
    ChatBusy,
    ChatDecoder,
    ChatHello,
    ChatQuit,
    ChatText,
    DeleteRequest,
    GetRequest,
    Presence,
    RegisterRequest,
    RequestDecoder,
    Response,
    ResponseDecoder,
    SetRequest,
    code_for,
    describe,
    encode,
    error_from_response,
    parse_request_line,
    parse_response_line,
    parse_status_reply,
    parse_udp_request,
    udp_verb_of,
    valid_user,
)

#: Every message class (what :func:`encode` takes).
MESSAGE_TYPES = (RegisterRequest, AddRequest, DeleteRequest, Response, SetRequest, GetRequest,
                 BuddyList, ChatHello, ChatText, ChatQuit, ChatBusy)

__all__ = [
    "Presence", "BuddyEntry", "MESSAGE_TYPES", *(t.__name__ for t in MESSAGE_TYPES),
    "RequestDecoder", "ResponseDecoder", "ChatDecoder",
    "encode", "describe", "parse_request_line", "parse_response_line", "parse_udp_request",
    "parse_status_reply", "udp_verb_of", "valid_user", "error_from_response", "code_for",
    "DEFAULT_TCP_PORT", "DEFAULT_UDP_PORT", "MAX_DATAGRAM",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
