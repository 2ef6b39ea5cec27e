"""Protocol 4, UDP part (file transfer datagrams): see transfer.py."""

import enum
from typing import Iterable, List, Optional, Tuple, Type, Union

from ._errors import Error

_Bytes = Union[bytes, bytearray, memoryview, str]

class AbortReason(enum.IntEnum):
    CANCELLED = 1
    IO_ERROR = 2
    PROTOCOL = 3

class Header:
    id: int
    key: int
    def __init__(self, id: int = ..., key: int = ...) -> None: ...
    def __eq__(self, other: object) -> bool: ...

class _Datagram:
    id: int
    key: int
    h: Header
    def __eq__(self, other: object) -> bool: ...
    def __repr__(self) -> str: ...
    __hash__: None  # type: ignore[assignment]

class Data(_Datagram):
    offset: int
    payload: bytes
    def __init__(self, id: int = ..., key: int = ..., offset: int = ...,
                 payload: _Bytes = ...) -> None: ...

class Ack(_Datagram):
    cumulative: int
    window: int
    delay_us: int
    fin: bool
    sack: List[Tuple[int, int]]
    def __init__(self, id: int = ..., key: int = ..., cumulative: int = ..., window: int = ...,
                 delay_us: int = ..., fin: bool = ...,
                 sack: Iterable[Tuple[int, int]] = ...) -> None: ...

class Fin(_Datagram):
    end: int
    last_byte: int
    def __init__(self, id: int = ..., key: int = ..., end: int = ...,
                 last_byte: int = ...) -> None: ...

class Abort(_Datagram):
    reason: AbortReason
    def __init__(self, id: int = ..., key: int = ..., reason: AbortReason = ...) -> None: ...

Datagram = Union[Data, Ack, Fin, Abort]
MESSAGE_TYPES: Tuple[Type[Datagram], ...]

def parse_datagram(datagram: _Bytes) -> Datagram: ...
def peek_header(datagram: _Bytes) -> Optional[Header]: ...
def encode(msg: Datagram) -> bytes: ...
def describe(msg: Datagram) -> str: ...
def error_from_abort(reason: AbortReason) -> Error: ...

VERSION: int
HEADER_SIZE: int
DATA_HEADER_SIZE: int
MAX_DATAGRAM: int
DEFAULT_DATAGRAM: int
MAX_OFFSET: int
MAX_SACK_RANGES: int
