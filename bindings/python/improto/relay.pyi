"""Protocol 3 (relay) and the TCP part of protocol 4 (messenger): see relay.py."""

import enum
from typing import Dict, Iterable, List, Optional, Tuple, Type, Union

from ._errors import ProtocolError

_Bytes = Union[bytes, bytearray, memoryview, str]

class Role(enum.IntEnum):
    TO_SEND = 0
    TO_RECV = 1

class Direction(enum.IntEnum):
    TO_SERVER = 0
    TO_CLIENT = 1

class _Message:
    def __eq__(self, other: object) -> bool: ...
    def __repr__(self) -> str: ...
    __hash__: None  # type: ignore[assignment]

class RegisterRequest(_Message):
    role: Role
    user: str
    def __init__(self, role: Role = ..., user: str = ...) -> None: ...

class Registered(_Message):
    role: Role
    user: str
    def __init__(self, role: Role = ..., user: str = ...) -> None: ...

class Send(_Message):
    to: str
    body: bytes
    def __init__(self, to: str = ..., body: _Bytes = ...) -> None: ...

class Sent(_Message):
    to: str
    def __init__(self, to: str = ...) -> None: ...

class Forward(_Message):
    from_: str
    body: bytes
    def __init__(self, from_: str = ..., body: _Bytes = ...) -> None: ...

class Received(_Message):
    from_: str
    def __init__(self, from_: str = ...) -> None: ...

class ErrorReply(_Message):
    code: int
    text: str
    def __init__(self, code: int = ..., text: str = ...) -> None: ...

class ListUsers(_Message):
    after: str
    def __init__(self, after: str = ...) -> None: ...

class UserList(_Message):
    users: List[str]
    more: bool
    def __init__(self, users: Iterable[str] = ..., more: bool = ...) -> None: ...

class ListFiles(_Message):
    after: str
    def __init__(self, after: str = ...) -> None: ...

class FileEntry:
    name: str
    size: int
    def __init__(self, name: str = ..., size: int = ...) -> None: ...
    def __eq__(self, other: object) -> bool: ...

class FileList(_Message):
    files: List[FileEntry]
    more: bool
    def __init__(self, files: List[FileEntry] = ..., more: bool = ...) -> None: ...

class Subscribe(_Message):
    def __init__(self) -> None: ...

class Subscribed(_Message):
    def __init__(self) -> None: ...

class Unsubscribe(_Message):
    def __init__(self) -> None: ...

class Unsubscribed(_Message):
    def __init__(self) -> None: ...

class Joined(_Message):
    user: str
    def __init__(self, user: str = ...) -> None: ...

class Left(_Message):
    user: str
    def __init__(self, user: str = ...) -> None: ...

class Download(_Message):
    file: str
    udp_port: int
    offset: int
    def __init__(self, file: str = ..., udp_port: int = ..., offset: int = ...) -> None: ...

class Transfer(_Message):
    id: int
    size: int
    offset: int
    sha256: str
    udp_port: int
    def __init__(self, id: int = ..., size: int = ..., offset: int = ..., sha256: str = ...,
                 udp_port: int = ...) -> None: ...

class _IdMessage(_Message):
    id: int
    def __init__(self, id: int = ...) -> None: ...

class Pause(_IdMessage): ...
class Resume(_IdMessage): ...
class Cancel(_IdMessage): ...
class Paused(_IdMessage): ...
class Resumed(_IdMessage): ...
class Cancelled(_IdMessage): ...

Message = Union[RegisterRequest, Registered, Send, Sent, Forward, Received, ErrorReply,
                ListUsers, UserList, ListFiles, FileList, Subscribe, Subscribed, Unsubscribe,
                Unsubscribed, Joined, Left, Download, Transfer, Pause, Resume, Cancel, Paused,
                Resumed, Cancelled]

MESSAGE_TYPES: Tuple[Type[Message], ...]

class Decoder:
    """Incremental decoder of one relay byte stream (raises ProtocolError with .messages)."""
    def __init__(self, direction: Direction, *, max_line: Optional[int] = ...,
                 max_headers: Optional[int] = ..., max_body: Optional[int] = ...) -> None: ...
    def feed(self, data: Union[bytes, bytearray, memoryview]) -> List[Message]: ...
    def finish(self) -> List[Message]: ...
    @property
    def failed(self) -> bool: ...
    @property
    def direction(self) -> Direction: ...

def encode(msg: Message) -> bytes: ...
def describe(msg: Message) -> str: ...
def direction_of(msg: Message) -> Direction: ...
def valid_user(name: str) -> bool: ...
def valid_file_name(name: str) -> bool: ...
def is_broadcast(recipient: str) -> bool: ...
def error_reply(code: int) -> ErrorReply: ...
def error_from_reply(reply: ErrorReply) -> ProtocolError: ...
def wire_text(code: int) -> str: ...
def closes_connection(code: int) -> bool: ...

CODES: Dict[str, int]
BROADCAST: str
MAX_LIST_BODY: int
