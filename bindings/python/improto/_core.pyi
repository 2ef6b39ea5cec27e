"""Type stub of the native core, improto._core (see servers.cpp, errors.cpp,
codecs_*.cpp). The codec submodules improto._core.{registry,buddy,relay,transfer}
are what the public modules improto.registry ... re-export; their stubs are
improto/<protocol>.pyi."""

import os
from typing import Dict, Optional, Union

from improto import buddy as buddy
from improto import registry as registry
from improto import relay as relay
from improto import transfer as transfer

# errc name -> short description, e.g. "line_too_long" -> "line too long".
ERRC: Dict[str, str]

def _raise(errc: str, detail: str = ..., code: Optional[int] = ...) -> None:
    """Raises the exception the bindings raise for this errc (for tests of the mapping)."""

_Log = bool
_Path = Union[str, os.PathLike[str]]

class _ServerCore:
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def stop(self, timeout: float = ...) -> None: ...
    def next_log_line(self) -> Optional[str]: ...
    def connection_count(self) -> int: ...
    def user_count(self) -> int: ...

class _RegistryServer(_ServerCore):
    def __init__(self, host: str, port: int, data_dir: _Path, idle_timeout: float,
                 message_timeout: float, max_connections: int, max_body: int, max_line: int,
                 max_headers: int, max_pipelined: int, sync: str, log: _Log) -> None: ...
    def pending_writes(self) -> int: ...

class _BuddyServer(_ServerCore):
    def __init__(self, host: str, port: int, udp_port: int, data_dir: _Path, ttl: float,
                 idle_timeout: float, message_timeout: float, max_connections: int,
                 udp_rate: float, sync: str, log: _Log) -> None: ...
    @property
    def udp_port(self) -> int: ...
    def dropped_datagrams(self) -> int: ...

class _RelayServer(_ServerCore):
    def __init__(self, host: str, port: int, receiver_timeout: float, idle_timeout: float,
                 message_timeout: float, max_body: int, max_connections: int,
                 max_in_flight: int, max_unanswered: int, log: _Log) -> None: ...
