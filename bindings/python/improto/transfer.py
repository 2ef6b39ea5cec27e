"""Protocol 4, UDP part: the datagrams of a file download.

Every datagram starts with a 14-byte header (version, type, transfer ``id``,
per-transfer ``key``); the types are :class:`Data` (server -> client, a
payload at an offset), :class:`Ack` (client -> server: cumulative ack,
window, delay, fin flag, SACK ranges), :class:`Fin` (the file's end) and
:class:`Abort` (either way, with an :class:`AbortReason`)::

    >>> from improto import transfer
    >>> b = transfer.encode(transfer.Data(id=7, key=1, offset=0, payload=b"hello"))
    >>> transfer.parse_datagram(b)
    data id=7 key=0x0000000000000001 offset=0 length=5 payload="hello"

Payloads are ``bytes``. Malformed datagrams raise
:class:`improto.ProtocolError` (``.code``: the ABORT reason a peer would
answer with).
"""

from ._core.transfer import (
    DATA_HEADER_SIZE,
    DEFAULT_DATAGRAM,
    HEADER_SIZE,
    MAX_DATAGRAM,
    MAX_OFFSET,
    MAX_SACK_RANGES,
    VERSION,
    Abort,
    AbortReason,
    Ack,
    Data,
    Fin,
    Header,
    describe,
    encode,
    error_from_abort,
    parse_datagram,
    peek_header,
)

#: Every datagram class (what :func:`encode` takes).
MESSAGE_TYPES = (Data, Ack, Fin, Abort)

__all__ = [
    "Header", "Data", "Ack", "Fin", "Abort", "AbortReason", "MESSAGE_TYPES",
    "parse_datagram", "peek_header", "encode", "describe", "error_from_abort",
    "VERSION", "HEADER_SIZE", "DATA_HEADER_SIZE", "MAX_DATAGRAM", "DEFAULT_DATAGRAM",
    "MAX_OFFSET", "MAX_SACK_RANGES",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
