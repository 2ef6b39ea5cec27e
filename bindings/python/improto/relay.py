"""Protocol 3 (the relay of seed 003) and the TCP part of protocol 4 (messenger).

Sans-I/O: bytes in, message objects out, and back. Every message is a class
with its fields as attributes, keyword construction, ``==`` and a ``repr()``
that is the library's canonical ``describe()`` text::

    >>> from improto import relay
    >>> relay.encode(relay.Send(to="bob", body=b"hello"))
    b'SEND bob\\nContent-length: 5\\n\\nhello'
    >>> d = relay.Decoder(relay.Direction.TO_CLIENT)
    >>> d.feed(b"SENT bob\\n\\nFORWARD alice\\nContent-le")
    [sent to="bob"]
    >>> d.feed(b"ngth: 2\\n\\nhi")
    [forward from="alice" body="hi"]

Names are ``str``, bodies ``bytes``. ``Forward.from_`` and ``Received.from_``
carry the C++ field ``from`` (a Python keyword). Errors raise
:class:`improto.ProtocolError` subclasses; ``.code`` is the ERROR code a
server answers that input with (see :data:`CODES`).

Requests of protocol 4 go on the TOSEND socket and each gets one reply, in
order: :class:`ListUsers` -> :class:`UserList`, :class:`ListFiles` ->
:class:`FileList`, :class:`Subscribe` -> :class:`Subscribed` (then
:class:`Joined` / :class:`Left` notices on TORECV), :class:`Download` ->
:class:`Transfer`, :class:`Pause` / :class:`Resume` / :class:`Cancel`.
"""

from ._core import relay as _relay
from ._core.relay import (
    BROADCAST,
    CODES,
    MAX_LIST_BODY,
    Cancel,
    Cancelled,
    Decoder,
    Direction,
    Download,
    ErrorReply,
    FileEntry,
    FileList,
    Forward,
    Joined,
    Left,
    ListFiles,
    ListUsers,
    Pause,
    Paused,
    Received,
    Registered,
    RegisterRequest,
    Resume,
    Resumed,
    Role,
    Send,
    Sent,
    Subscribe,
    Subscribed,
    Transfer,
    Unsubscribe,
    Unsubscribed,
    UserList,
    closes_connection,
    describe,
    direction_of,
    encode,
    error_from_reply,
    error_reply,
    is_broadcast,
    valid_file_name,
    valid_user,
    wire_text,
)

#: Every message class of the protocol (what :func:`encode` takes).
MESSAGE_TYPES = (
    RegisterRequest, Registered, Send, Sent, Forward, Received, ErrorReply, ListUsers,
    UserList, ListFiles, FileList, Subscribe, Subscribed, Unsubscribe, Unsubscribed,
    Joined, Left, Download, Transfer, Pause, Resume, Cancel, Paused, Resumed, Cancelled,
)

__all__ = [
    "Role", "Direction", "Decoder", "FileEntry", "MESSAGE_TYPES",
    *(t.__name__ for t in MESSAGE_TYPES),
    "encode", "describe", "direction_of", "valid_user", "valid_file_name", "is_broadcast",
    "error_reply", "error_from_reply", "wire_text", "closes_connection",
    "CODES", "BROADCAST", "MAX_LIST_BODY",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
for _f in (encode, describe, direction_of, valid_user, valid_file_name, is_broadcast,
           error_reply, error_from_reply, wire_text, closes_connection):
    try:
        _f.__module__ = __name__
    except (AttributeError, TypeError):
        pass
del _name, _obj, _f, _relay
