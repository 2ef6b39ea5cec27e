"""The improto servers in-process: each runs the C++ server core on its own
thread and event loop, listening on loopback on a free port by default.

>>> with RelayServer() as relay:
...     connect_somehow(relay.host, relay.port)

The keyword arguments mirror the flags of the server tools (``imregistryd``,
``imbuddyd``, ``imrelayd``), with durations in seconds. A bad option raises
:class:`improto.ConfigError`, a taken port :class:`improto.AddressInUseError`,
an unusable store :class:`improto.StorageError`, unreachable NATS servers
:class:`improto.TransportError`, and a cluster or PostgreSQL option in a
build without libnats or libpq :class:`improto.UnsupportedError`.

Several in-process servers (or servers in several processes, or the tools)
form a cluster as the tools do (docs/cluster.md)::

    a = RelayServer(cluster="nats://127.0.0.1:4222", node="a")
    b = RelayServer(cluster="nats://127.0.0.1:4222", node="b")
    # a user registered on a reaches a user registered on b

A server stops with :meth:`stop`, at the end of a ``with`` block, when it is
garbage-collected, or at interpreter exit, whichever comes first. Its thread
never takes the GIL: the ``log`` callback, if given, is called on a Python
thread of its own, in order, one line per server event.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import weakref
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from . import _core
from ._errors import ConfigError, UnsupportedError

__all__ = ["RegistryServer", "BuddyServer", "RelayServer"]

Logger = Optional[Callable[[str], Any]]
PathLike = Union[str, "os.PathLike[str]"]
NatsServers = Union[str, Sequence[str], None]

_NO_NATS = ("this build of improto has no cluster support (built without libnats: "
            "install libnats-dev and reinstall the package)")
_NO_POSTGRESQL = ("this build of improto has no PostgreSQL support (built without libpq: "
                  "install libpq-dev and reinstall the package)")


def _nats_servers(what: str, servers: NatsServers) -> str:
    """``"nats://H:P[,nats://H:P...]"`` or a list of such URLs -> the
    comma-separated list the core (and the tools' flags) take; "" for None."""
    if servers is None:
        return ""
    if isinstance(servers, str):
        text = servers
    elif isinstance(servers, (list, tuple)) and all(isinstance(u, str) for u in servers):
        text = ",".join(servers)
    else:
        raise TypeError(f"{what}: expected 'nats://HOST:PORT[,...]' or a list of such URLs, "
                        f"not {type(servers).__name__}")
    if not text:
        raise ConfigError(f"{what}: expected nats://HOST:PORT[,...], not an empty list",
                          errc="invalid_config")
    if not _core.HAS_NATS:
        raise UnsupportedError(f"{what}: {_NO_NATS}", errc="invalid_config")
    return text


def _store_url(store: Optional[str]) -> str:
    """A ``postgresql://`` URL checked against this build; "" for None (SQLite)."""
    if store is None:
        return ""
    if not isinstance(store, str):
        raise TypeError(f"store: expected a postgresql:// URL, not {type(store).__name__}")
    if store.startswith(("postgresql://", "postgres://")) and not _core.HAS_POSTGRESQL:
        raise UnsupportedError(f"store: {_NO_POSTGRESQL}", errc="invalid_config")
    return store


def _shutdown(core: Any, temp_dir: Optional[str], timeout: float,
              pump: Optional[threading.Thread]) -> None:
    try:
        core.stop(timeout)
        # Every line is queued once stop() returns: deliver them before returning.
        if pump is not None and pump is not threading.current_thread():
            pump.join()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _pump_log(core: Any, log: Callable[[str], Any]) -> None:
    # Holds the core, never the server object, so that GC can still stop it.
    while True:
        line = core.next_log_line()
        if line is None:
            return
        try:
            log(line)
        except Exception:  # a failing callback must not lose the next lines
            sys.excepthook(*sys.exc_info())


class _Server:
    """What the three servers share: address, stop(), context manager."""

    _core: Any
    _temp_dir: Optional[str]

    def _launch(self, make: Callable[[bool], Any], temp_dir: Optional[str], log: Logger) -> None:
        try:
            self._core = make(log is not None)
        except BaseException:
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        self._temp_dir = temp_dir
        pump = None
        if log is not None:
            pump = threading.Thread(target=_pump_log, args=(self._core, log),
                                    name=f"improto {type(self).__name__} log", daemon=True)
            pump.start()
        # Runs once: on stop(), on garbage collection, or at exit.
        self._finalizer = weakref.finalize(self, _shutdown, self._core, temp_dir, 2.0, pump)
        self._pump = pump

    @property
    def host(self) -> str:
        """The address the server listens on, e.g. ``"127.0.0.1"``."""
        return self._core.host

    @property
    def port(self) -> int:
        """The TCP port it listens on (the one the system chose when 0 was asked)."""
        return self._core.port

    @property
    def address(self) -> Tuple[str, int]:
        """``(host, port)``, ready for :func:`socket.create_connection`."""
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        """True until the server is stopped."""
        return self._finalizer.alive

    def connection_count(self) -> int:
        """Open TCP connections right now. Raises ValueError once stopped."""
        return self._core.connection_count()

    def user_count(self) -> int:
        """Users registered right now. Raises ValueError once stopped."""
        return self._core.user_count()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the server: stop accepting, send each connection what it is
        owed (answers to committed changes) and close it, waiting at most
        ``timeout`` seconds for that, then end the server's thread and
        remove the temporary data directory, if the server made one.
        Calling it again does nothing."""
        timeout = float(timeout)
        if not 0 <= timeout < 1e9:
            raise ConfigError(f"timeout: expected a number of seconds from 0, not {timeout}",
                              errc="invalid_config")
        if self._finalizer.detach() is not None:
            _shutdown(self._core, self._temp_dir, timeout, self._pump)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


def _data_dir(data_dir: Optional[PathLike], prefix: str) -> Tuple[str, Optional[str]]:
    if data_dir is not None:
        return os.fspath(data_dir), None
    temp = tempfile.mkdtemp(prefix=prefix)
    return temp, temp


class RegistryServer(_Server):
    """The registry server (protocol 1, seeds 000 and 004) in-process: HTTP/1.1,
    ``POST /userlist.txt`` with ``REGISTER name@ip:port`` or ``LOGOUT ...``,
    ``GET /userlist.txt`` for the list.

    Args:
        host: address to listen on.
        port: TCP port; 0 (the default) picks a free one, see :attr:`port`.
        data_dir: existing directory for ``registry.sqlite3``; by default a
            fresh temporary directory, removed when the server stops.
        idle_timeout: close connections idle this many seconds.
        message_timeout: drop clients that leave a request unfinished this long.
        max_connections: connections served at once.
        max_body: largest request body accepted (else 413).
        max_line: longest request or header line (else 431).
        max_headers: most header lines in a request (else 431).
        max_pipelined: requests one connection may have awaiting replies.
        max_users: entries the list may hold; a REGISTER past it gets 503.
        logout_from_any: accept a LOGOUT from any address (the seed's rule);
            by default only the address that registered the entry may.
        sync: SQLite synchronous level: ``"full"`` (acknowledged changes
            survive power loss), ``"normal"``, ``"extra"`` or ``"off"``.
        store: keep the list in this PostgreSQL database
            (``"postgresql://USER@HOST:PORT/DB"``, ``imregistryd --store``)
            instead of ``data_dir/registry.sqlite3``: same answers; while the
            database is down changes are answered 503 and the server
            reconnects by itself. One registry per database (its list is
            served from memory).
        commit_on_io: commit durable changes on the thread that serves
            requests, as Redis does (``imregistryd --commit-on-io``): less
            CPU per change, but every request, GETs too, waits behind each
            fsync. SQLite only (ConfigError with ``store``).
        defer_accept: accept a connection once its request has arrived
            (``imregistryd --defer-accept``); a silent client is accepted
            about this many seconds after connecting, and only then counted
            in :meth:`connection_count`. 0 accepts every connection at once.
        log: called with each line the server logs (on a Python thread of
            the server's own, in order), or None.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_dir: Optional[PathLike] = None,
        idle_timeout: float = 300.0,
        message_timeout: float = 30.0,
        max_connections: int = 10000,
        max_body: int = 4096,
        max_line: int = 8192,
        max_headers: int = 64,
        max_pipelined: int = 256,
        max_users: int = 1_000_000,
        logout_from_any: bool = False,
        sync: str = "full",
        store: Optional[str] = None,
        commit_on_io: bool = False,
        defer_accept: int = 1,
        log: Logger = None,
    ) -> None:
        store_url = _store_url(store)
        directory, temp = _data_dir(data_dir, "improto-registry-")
        self.data_dir = directory
        """The directory holding ``registry.sqlite3``."""
        self._launch(
            lambda logging: _core._RegistryServer(
                host, port, directory, idle_timeout, message_timeout, max_connections,
                max_body, max_line, max_headers, max_pipelined, max_users, logout_from_any,
                sync, store_url, commit_on_io, defer_accept, logging),
            temp, log)

    def pending_writes(self) -> int:
        """Writes queued or being committed (SQLite or PostgreSQL). Raises ValueError once stopped."""
        return self._core.pending_writes()


class BuddyServer(_Server):
    """The buddy list and status server (protocol 2, seed 002) in-process.
    TCP (:attr:`port`): ``REG``/``ADD``/``DEL``, one request per connection;
    UDP (:attr:`udp_port`): ``SET`` (no reply) and ``GET``.

    Args:
        host: address to listen on (TCP and UDP).
        port: TCP port; 0 (the default) picks a free one.
        udp_port: UDP port; 0 (the default) picks a free one.
        data_dir: existing directory for ``buddy.sqlite3``; by default a
            fresh temporary directory, removed when the server stops.
        ttl: an ONLINE status not refreshed this many seconds reads OFFLINE.
        idle_timeout: close TCP connections that send nothing this long.
        message_timeout: close TCP connections that leave a line unfinished this long.
        max_connections: TCP connections served at once.
        udp_rate: datagrams accepted per second from one address (bursts of
            twice that); 0 for no limit.
        sync: SQLite synchronous level (see :class:`RegistryServer`).
        store: keep users and buddy lists in this PostgreSQL database
            (``"postgresql://USER@HOST:PORT/DB"``, ``imbuddyd --store``)
            instead of ``data_dir/buddy.sqlite3``. Several servers (nodes) on
            one database serve the same users; while it is down, changes are
            answered ``503 UNAVAILABLE``.
        status: share SET statuses with the other nodes through these NATS
            servers (``"nats://HOST:PORT[,...]"`` or a list of URLs;
            ``imbuddyd --status``): a JetStream key-value bucket whose TTL is
            ``ttl``, so a GET on any node answers what a SET on any node set.
        kv_replicas: replicas of the status bucket when this node creates it
            (1; 3 on a 3-server NATS cluster).
        log: called with one line per server event, or None.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        udp_port: int = 0,
        *,
        data_dir: Optional[PathLike] = None,
        ttl: float = 300.0,
        idle_timeout: float = 120.0,
        message_timeout: float = 30.0,
        max_connections: int = 10000,
        udp_rate: float = 200.0,
        sync: str = "full",
        store: Optional[str] = None,
        status: NatsServers = None,
        kv_replicas: int = 1,
        log: Logger = None,
    ) -> None:
        store_url = _store_url(store)
        status_servers = _nats_servers("status", status)
        directory, temp = _data_dir(data_dir, "improto-buddy-")
        self.data_dir = directory
        """The directory holding ``buddy.sqlite3``."""
        self._launch(
            lambda logging: _core._BuddyServer(
                host, port, udp_port, directory, ttl, idle_timeout, message_timeout,
                max_connections, udp_rate, sync, store_url, status_servers, kv_replicas,
                logging),
            temp, log)

    @property
    def udp_port(self) -> int:
        """The UDP port of SET/GET (the one the system chose when 0 was asked)."""
        return self._core.udp_port

    @property
    def udp_address(self) -> Tuple[str, int]:
        """``(host, udp_port)``, ready for :meth:`socket.socket.sendto`."""
        return (self.host, self.udp_port)

    def dropped_datagrams(self) -> int:
        """Datagrams dropped over the per-source rate, and oversized ones."""
        return self._core.dropped_datagrams()


class RelayServer(_Server):
    """The relay chat server (protocol 3, seed 003, with the messenger
    extensions of protocol 4) in-process. All state is in memory; with
    ``cluster`` it is one node of a relay cluster on NATS (docs/cluster.md):
    users of every node reach each other, names are unique cluster-wide
    (``ERROR 104`` when another node holds one), presence and LIST USERS
    are the union over the nodes.

    Args:
        host: address to listen on.
        port: TCP port; 0 (the default) picks a free one.
        receiver_timeout: seconds a receiver has to answer a FORWARD before
            the sender gets ``ERROR 102``.
        idle_timeout: close connections silent this many seconds.
        message_timeout: close connections that leave a message unfinished this long.
        max_body: largest message body accepted.
        max_connections: connections served at once.
        max_in_flight: SENDs one sender may have awaiting replies.
        max_unanswered: FORWARDs one receiver may leave unanswered.
        pairing_timeout: seconds a name registered on one socket waits for
            its other socket (from the same IP address) before it is dropped.
        files: a directory whose regular files are offered for download
            (LIST FILES, DOWNLOAD; ``imrelayd --files``); None: no files
            (LIST FILES is empty, DOWNLOAD answers ``ERROR 106``).
        max_transfers: downloads at once, all users (``ERROR 109`` past it).
        max_user_transfers: downloads at once per user.
        paused_timeout: seconds a paused download is kept, then dropped.
        transfer_timeout: seconds a download's client may be silent before
            it is dropped.
        cluster: the NATS servers (JetStream on) of the cluster this server
            joins as a node: ``"nats://HOST:PORT[,...]"`` or a list of URLs
            (``imrelayd --cluster``); None: a single server. Needs ``node``.
        node: this node's name, unique in the cluster (1-64 of
            ``A-Za-z0-9_-``; ``--node``).
        heartbeat: seconds between the node's heartbeats (``--heartbeat``).
        node_timeout: a node silent this many seconds is dead and its names
            are freed (by the lowest live node, with LEFT); a node that does
            not hear its own heartbeat for ``node_timeout - heartbeat``
            fences itself (drops its sessions). At least 3 heartbeats.
        kv_replicas: replicas of the names bucket when this node creates it
            (1; 3 on a 3-server NATS cluster).
        log: called with one line per server event, or None.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        receiver_timeout: float = 10.0,
        idle_timeout: float = 3600.0,
        message_timeout: float = 30.0,
        max_body: int = 65536,
        max_connections: int = 10000,
        max_in_flight: int = 1024,
        max_unanswered: int = 4096,
        pairing_timeout: float = 30.0,
        files: Optional[PathLike] = None,
        max_transfers: int = 64,
        max_user_transfers: int = 4,
        paused_timeout: float = 300.0,
        transfer_timeout: float = 30.0,
        cluster: NatsServers = None,
        node: Optional[str] = None,
        heartbeat: float = 1.0,
        node_timeout: float = 3.0,
        kv_replicas: int = 1,
        log: Logger = None,
    ) -> None:
        files_dir = None if files is None else os.fspath(files)
        servers = _nats_servers("cluster", cluster)
        if node is not None and not isinstance(node, str):
            raise TypeError(f"node: expected str, not {type(node).__name__}")
        if (servers == "") != (node is None):
            raise ConfigError("cluster and node go together", errc="invalid_config")
        self.node = node
        """This node's name in its cluster; None for a single server."""
        self._launch(
            lambda logging: _core._RelayServer(
                host, port, receiver_timeout, idle_timeout, message_timeout, max_body,
                max_connections, max_in_flight, max_unanswered, pairing_timeout, files_dir,
                max_transfers, max_user_transfers, paused_timeout, transfer_timeout, servers,
                node or "", heartbeat, node_timeout, kv_replicas, logging),
            None, log)
