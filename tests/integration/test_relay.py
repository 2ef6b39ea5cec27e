"""imrelayd and imrelay, driven byte for byte as seed 003 describes."""

import itertools
import multiprocessing
import select
import socket
import statistics
import subprocess
import threading
import time

import pytest

from conftest import binary, closed_by_peer, connect, recv_exactly, recv_until
from relay_wire import forward, register, send  # tests/support, on sys.path via conftest
from test_hardening_net import sanitized


@pytest.fixture
def relay(start):
    def _relay(*flags):
        proc = start("imrelayd", "--port", "0", *flags)
        return proc, proc.listening()[1]
    return _relay


def test_seed_registration_table(relay):
    _, port = relay()
    tx, rx = register(port, b"alice")
    bad = connect(port)
    bad.sendall(b"REGISTER TOSEND al!ce\n\n")
    assert recv_until(bad) == b"ERROR 100 Malformed username\n\n"
    # The client may retry on the same socket.
    bad.sendall(b"REGISTER TOSEND ALL\n\n")
    assert recv_until(bad) == b"ERROR 100 Malformed username\n\n"
    bad.sendall(b"REGISTER TOSEND alice\n\n")
    assert recv_until(bad) == b"ERROR 104 Username taken\n\n"
    bad.sendall(b"REGISTER TOSEND bob\n\n")
    assert recv_until(bad) == b"REGISTERED TOSEND bob\n\n"
    # bob has no receiving socket yet: commands are refused with 101.
    bad.sendall(send(b"alice", b"hi"))
    assert recv_until(bad) == b"ERROR 101 No user registered\n\n"
    fresh = connect(port)
    fresh.sendall(send(b"alice", b"hi"))
    assert recv_until(fresh) == b"ERROR 101 No user registered\n\n"


def test_unicast_acknowledged_end_to_end(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    a_tx.sendall(send(b"bob", b"hello bob"))
    assert recv_exactly(b_rx, len(forward(b"alice", b"hello bob"))) == forward(b"alice", b"hello bob")
    b_rx.sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"SENT bob\n\n"


def test_crlf_and_header_case_accepted(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    a_tx.sendall(b"SEND bob\r\nCONTENT-LENGTH: 2\r\n\r\nhi")
    assert recv_exactly(b_rx, len(forward(b"alice", b"hi"))) == forward(b"alice", b"hi")
    b_rx.sendall(b"RECEIVED alice\r\n\r\n")
    assert recv_until(a_tx) == b"SENT bob\n\n"


def test_undeliverable_cases_answer_102(relay):
    _, port = relay("--receiver-timeout", "0.5")
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    a_tx.sendall(send(b"nobody", b"x"))
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    # The receiver reports a broken message (the seed spells it this way).
    a_tx.sendall(send(b"bob", b"x"))
    recv_exactly(b_rx, len(forward(b"alice", b"x")))
    b_rx.sendall(b"ERROR 103 Header Incomplete\n\n")
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    # The receiver does not answer in time.
    started = time.monotonic()
    a_tx.sendall(send(b"bob", b"y"))
    recv_exactly(b_rx, len(forward(b"alice", b"y")))
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    assert 0.3 < time.monotonic() - started < 5
    # Its late answer is absorbed; the next message works again.
    b_rx.sendall(b"RECEIVED alice\n\n")
    a_tx.sendall(send(b"bob", b"z"))
    recv_exactly(b_rx, len(forward(b"alice", b"z")))
    b_rx.sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"SENT bob\n\n"


def test_missing_content_length_is_103_and_close(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    a_tx.sendall(b"SEND bob\n\nhello")
    assert recv_until(a_tx) == b"ERROR 103 Header incomplete\n\n"
    assert closed_by_peer(a_tx)


def test_body_over_limit_is_103_and_close(relay):
    _, port = relay("--max-body", "100")
    a_tx, a_rx = register(port, b"alice")
    a_tx.sendall(b"SEND bob\nContent-length: 101\n\n")
    assert recv_until(a_tx) == b"ERROR 103 Header incomplete\n\n"
    assert closed_by_peer(a_tx)


def test_unknown_command_is_answered_and_connection_kept(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    a_tx.sendall(b"DANCE now\n\n")
    assert recv_until(a_tx).startswith(b"ERROR 105")
    a_tx.sendall(b"LIST USERS\n\n")
    assert recv_until(a_tx, b"alice\n") == b"USERS\nContent-length: 6\n\nalice\n"


def test_broadcast_waits_for_every_receiver(relay):
    _, port = relay("--receiver-timeout", "1")
    a_tx, a_rx = register(port, b"alice")
    pairs = [register(port, name) for name in (b"bob", b"carol", b"dave")]
    receivers = [rx for _, rx in pairs]
    a_tx.sendall(send(b"ALL", b"hi all"))
    for rx in receivers:
        assert recv_exactly(rx, len(forward(b"alice", b"hi all"))) == forward(b"alice", b"hi all")
    receivers[0].sendall(b"RECEIVED alice\n\n")
    receivers[1].sendall(b"RECEIVED alice\n\n")
    a_tx.settimeout(0.3)
    with pytest.raises(socket.timeout):
        a_tx.recv(1)  # not before the last one answered
    a_tx.settimeout(5)
    receivers[2].sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"SENT ALL\n\n"
    # The sender does not get its own broadcast.
    a_rx.settimeout(0.2)
    with pytest.raises(socket.timeout):
        a_rx.recv(1)
    # One receiver failing makes the broadcast fail.
    a_tx.sendall(send(b"ALL", b"again"))
    for rx in receivers:
        recv_exactly(rx, len(forward(b"alice", b"again")))
    receivers[0].sendall(b"RECEIVED alice\n\n")
    receivers[1].sendall(b"ERROR 103 Header Incomplete\n\n")
    receivers[2].sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"


def test_pipelined_sends_are_answered_in_order(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    c_tx, c_rx = register(port, b"carol")
    a_tx.sendall(send(b"bob", b"1") + send(b"nobody", b"2") + send(b"carol", b"3") + send(b"bob", b"4"))
    recv_exactly(c_rx, len(forward(b"alice", b"3")))
    c_rx.sendall(b"RECEIVED alice\n\n")  # carol answers before bob
    recv_exactly(b_rx, 2 * len(forward(b"alice", b"1")))
    b_rx.sendall(b"RECEIVED alice\n\nRECEIVED alice\n\n")
    replies = b"".join(recv_until(a_tx) for _ in range(4))
    assert replies == (b"SENT bob\n\n" b"ERROR 102 Unable to send\n\n" b"SENT carol\n\n" b"SENT bob\n\n")


def test_closing_either_socket_unregisters_the_user(relay):
    proc, port = relay()
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    b_rx.close()
    proc.wait_line(r"bob unregistered")
    a_tx.sendall(send(b"bob", b"x"))
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    b_tx.sendall(send(b"alice", b"x"))
    assert recv_until(b_tx) == b"ERROR 101 No user registered\n\n"
    # The name is free again, on new sockets.
    again = register(port, b"bob")
    assert again


def test_presence_and_user_list(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    a_tx.sendall(b"SUBSCRIBE PRESENCE\n\n")
    assert recv_until(a_tx) == b"SUBSCRIBED PRESENCE\n\n"
    b_tx, b_rx = register(port, b"bob")
    assert recv_until(a_rx) == b"JOINED bob\n\n"
    a_tx.sendall(b"LIST USERS\n\n")
    assert recv_until(a_tx, b"bob\n") == b"USERS\nContent-length: 10\n\nalice\nbob\n"
    b_tx.close()
    assert recv_until(a_rx) == b"LEFT bob\n\n"


def connect_from(port, source, timeout=10.0):
    """A connection from another loopback address (127.0.0.0/8 is all local)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    s.settimeout(timeout)
    return s


def register_at_once(port, name, source="127.0.0.1"):
    """Like register(), but sends both REGISTERs before reading either reply,
    so that a short --pairing-timeout cannot fall between them."""
    tx, rx = connect_from(port, source), connect_from(port, source)
    tx.sendall(b"REGISTER TOSEND %s\n\n" % name)
    rx.sendall(b"REGISTER TORECV %s\n\n" % name)
    assert recv_until(tx) == b"REGISTERED TOSEND %s\n\n" % name
    assert recv_until(rx) == b"REGISTERED TORECV %s\n\n" % name
    return tx, rx


def test_sockets_pair_only_from_the_same_address(relay):
    proc, port = relay()
    a_tx, a_rx = register(port, b"alice")
    bob_rx = connect(port)
    bob_rx.sendall(b"REGISTER TORECV bob\n\n")
    assert recv_until(bob_rx) == b"REGISTERED TORECV bob\n\n"
    # Someone else cannot complete bob's registration and send as bob.
    mallory = connect_from(port, "127.0.0.2")
    mallory.sendall(b"REGISTER TOSEND bob\n\n")
    assert recv_until(mallory) == b"ERROR 104 Username taken\n\n"
    mallory.sendall(send(b"alice", b"I am bob"))
    assert recv_until(mallory) == b"ERROR 101 No user registered\n\n"
    # Nor claim a name's receiving socket before its owner comes.
    trap = connect_from(port, "127.0.0.2")
    trap.sendall(b"REGISTER TORECV carol\n\n")
    assert recv_until(trap) == b"REGISTERED TORECV carol\n\n"
    carol_tx = connect(port)
    carol_tx.sendall(b"REGISTER TOSEND carol\n\n")
    assert recv_until(carol_tx) == b"ERROR 104 Username taken\n\n"
    a_tx.sendall(send(b"carol", b"for carol"))
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    # The refused socket stays open and may take a free name.
    mallory.sendall(b"REGISTER TOSEND mallory\n\n")
    assert recv_until(mallory) == b"REGISTERED TOSEND mallory\n\n"
    # bob's own send socket, from bob's address, pairs and works.
    bob_tx = connect(port)
    bob_tx.sendall(b"REGISTER TOSEND bob\n\n")
    assert recv_until(bob_tx) == b"REGISTERED TOSEND bob\n\n"
    bob_tx.sendall(send(b"alice", b"really bob"))
    assert recv_exactly(a_rx, len(forward(b"bob", b"really bob"))) == forward(b"bob", b"really bob")
    a_rx.sendall(b"RECEIVED bob\n\n")
    assert recv_until(bob_tx) == b"SENT alice\n\n"
    a_tx.sendall(send(b"bob", b"hi bob"))
    assert recv_exactly(bob_rx, len(forward(b"alice", b"hi bob"))) == forward(b"alice", b"hi bob")
    bob_rx.sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"SENT bob\n\n"
    # A whole registration from another address is fine.
    register_at_once(port, b"dave", source="127.0.0.2")


def test_half_registration_expires_and_frees_the_name(relay):
    proc, port = relay("--pairing-timeout", "0.3")
    a_tx, a_rx = register_at_once(port, b"alice")
    a_tx.sendall(b"SUBSCRIBE PRESENCE\n\n")
    assert recv_until(a_tx) == b"SUBSCRIBED PRESENCE\n\n"
    lone = connect(port, timeout=30)
    lone.sendall(b"REGISTER TORECV bob\n\n")
    assert recv_until(lone) == b"REGISTERED TORECV bob\n\n"
    # The other socket never comes: the lone one is told and closed.
    assert recv_until(lone) == b"ERROR 101 No user registered\n\n"
    assert closed_by_peer(lone, timeout=30)
    proc.wait_line(r"^bob unregistered \(other socket not registered within 0\.3 s\)$", timeout=30)
    # The name is free, from any address.
    b_tx, b_rx = register_at_once(port, b"bob", source="127.0.0.2")
    # alice heard of bob once, when he completed; never of the half registration.
    assert recv_until(a_rx) == b"JOINED bob\n\n"
    # alice registered before the lone socket and is still there: a completed
    # pair does not expire.
    b_tx.sendall(send(b"alice", b"hi"))
    assert recv_exactly(a_rx, len(forward(b"bob", b"hi"))) == forward(b"bob", b"hi")
    a_rx.sendall(b"RECEIVED bob\n\n")
    assert recv_until(b_tx) == b"SENT alice\n\n"


def test_half_registered_users_are_not_listed_nor_announced(relay):
    _, port = relay()
    a_tx, a_rx = register(port, b"alice")
    a_tx.sendall(b"SUBSCRIBE PRESENCE\n\n")
    assert recv_until(a_tx) == b"SUBSCRIBED PRESENCE\n\n"
    half = connect(port)
    half.sendall(b"REGISTER TOSEND bob\n\n")
    assert recv_until(half) == b"REGISTERED TOSEND bob\n\n"
    a_tx.sendall(b"LIST USERS\n\n")
    assert recv_until(a_tx, b"alice\n") == b"USERS\nContent-length: 6\n\nalice\n"
    a_tx.sendall(send(b"bob", b"x"))
    assert recv_until(a_tx) == b"ERROR 102 Unable to send\n\n"
    half.close()  # leaves without completing: no LEFT either
    c_tx, c_rx = register(port, b"carol")
    assert recv_until(a_rx) == b"JOINED carol\n\n"


def test_pairing_timeout_flag_is_checked(start):
    for bad in ("0", "-1", "86401", "soon"):
        proc = start("imrelayd", "--port", "0", "--pairing-timeout", bad)
        assert proc.popen.wait(10) == 2
        proc.wait_line(r"--pairing-timeout")
    help_text = subprocess.run([binary("imrelayd"), "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--pairing-timeout SECONDS" in help_text.stdout


def _slice_worsts(a_tx, b_rx, seconds, slice_seconds=0.2):
    """alice -> bob round trips, one after another, for `seconds`: the worst
    round trip of each `slice_seconds`. A stall that comes back (every
    FORWARD expiry, every burst of the stuck receiver's sender) is in most
    slices' worst; one scheduling hiccup of a loaded machine is in one slice
    only, and a median over slices ignores it."""
    worst = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        slice_end = min(end, time.monotonic() + slice_seconds)
        slowest = 0.0
        while time.monotonic() < slice_end:
            body = b"%d" % next(_probe_numbers)
            began = time.monotonic()
            a_tx.sendall(send(b"bob", body))
            assert recv_exactly(b_rx, len(forward(b"alice", body))) == forward(b"alice", body)
            b_rx.sendall(b"RECEIVED alice\n\n")
            # bob's answer came after the receiver timeout (0.2 s) when this
            # process or the server was held up that long: ERROR 102, and the
            # late answer is absorbed. A slow round trip, timed as such.
            reply = recv_exactly(a_tx, len(b"SENT bob\n\n"))
            if reply == b"ERROR 102 ":
                reply += recv_exactly(a_tx, len(b"Unable to send\n\n"))
            assert reply in (b"SENT bob\n\n", b"ERROR 102 Unable to send\n\n"), reply
            slowest = max(slowest, time.monotonic() - began)
        worst.append(slowest)
    return worst


_probe_numbers = itertools.count()
_TARGETS = (b"nobody", b"stuck")  # index = the spammer's mode


def _spammer_of_stuck_and_nobody(port, rate, mode, ready, stop, result):
    """In a process of its own (its Python threads must not slow the probe):
    registers `stuck`, which never reads, and `spammer`, which sends 1 KiB
    SENDs at `rate` per second, pipelined, never waiting for answers, to
    `_TARGETS[mode.value]` until `stop`. Towards `stuck` the server stops reading the spammer past
    its in-flight window (1,024) until FORWARDs expire, and once the stuck
    receiver is past its queue (4 MiB) or unanswered bound (4,096) answers
    every SEND at once with ERROR 102; `ready` is set then (5,000 refused).
    Towards `nobody`, a name nobody holds, it does the same: the same bytes
    read and answered, without a stuck receiver behind them."""
    stuck_tx, stuck_rx = register(port, b"stuck")
    stuck_rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    spammer, _spammer_rx = register(port, b"spammer")
    spammer.settimeout(60)  # the server holds the writer back at times
    bursts = [send(target, b"x" * 1024) * 16 for target in _TARGETS]
    targets = []  # mode of each burst, in sending order (replies come in that order)
    counts = {"sent": 0, "replies": 0, "refused": 0, "stuck": 0}
    total = []

    def drain():
        got = b""
        give_up = time.monotonic() + 120
        while (not total or counts["replies"] < total[0]) and time.monotonic() < give_up:
            if not select.select([spammer], [], [], 0.05)[0]:
                continue
            chunk = spammer.recv(1 << 20)
            if not chunk:
                break
            got += chunk
            *done, got = got.split(b"\n\n")
            for line in done:
                counts["stuck"] += targets[counts["replies"] // 16]
                counts["replies"] += 1
                counts["refused"] += line == b"ERROR 102 Unable to send"
            if counts["refused"] >= 5000:
                ready.set()

    reader = threading.Thread(target=drain)
    reader.start()
    next_at = time.monotonic()
    while not stop.is_set():
        target = mode.value
        targets.append(target)
        spammer.sendall(bursts[target])
        counts["sent"] += 16
        next_at += 16 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    total.append(counts["sent"])
    reader.join(120)
    result[:] = [counts[k] for k in ("sent", "replies", "refused", "stuck")]


def test_receiver_that_never_reads_does_not_stall_others(relay):
    # Issue 11 item 8: alice <-> bob round trips while a spammer sends 8,000
    # SENDs/s (2,000 to a sanitized server) to a receiver that never reads
    # (its queue full: every SEND refused at once), against the same spammer
    # sending to a name nobody holds (the control: the same bytes read and
    # answered, nobody stuck).
    # The two conditions alternate in short phases (ABBA), so a loaded
    # machine (2 cores shared with compilers, an ASan build) slows both
    # alike; the figure per condition is the median of the worst round trip
    # of every 0.4 s slice. A stall behind the stuck receiver (the bench once
    # read a p99 of 100-200 ms against 4-5 ms) is in most stuck slices and
    # fails it: the bound is 3 x the control's figure + 50 ms. (The test used
    # to compare against phases without the spammer, run one after another:
    # under ASan on a loaded machine the spammer's own load and bursts of
    # other work took the stuck phase over 5 x quiet + 50 ms.)
    server, port = relay("--receiver-timeout", "0.2")
    # The stuck pair's rate in the bench's slow-consumer run; a quarter of it
    # for a sanitized server (3-10x slower), which would otherwise fall
    # behind the spammer on a loaded machine and then serve nobody else (a
    # sender that keeps a full read chunk waiting starves the other
    # connections: reported, see the commit).
    rate = 2000 if sanitized(server.args[0]) else 8000
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    for probe in (a_tx, b_rx):
        probe.settimeout(30)  # a round trip that long fails the bound anyway
    _slice_worsts(a_tx, b_rx, seconds=0.2)  # warm-up

    ctx = multiprocessing.get_context("fork")
    mode, ready, stop = ctx.Value("i", 1), ctx.Event(), ctx.Event()
    result = ctx.Array("q", 4)
    other = ctx.Process(target=_spammer_of_stuck_and_nobody,
                        args=(port, rate, mode, ready, stop, result))
    other.start()
    figures = {0: [], 1: []}
    try:
        assert ready.wait(60), "the stuck receiver's sender was not refused 5,000 times"
        for cycle in range(5):
            for m in ((0, 1) if cycle % 2 == 0 else (1, 0)):
                mode.value = m
                _slice_worsts(a_tx, b_rx, seconds=0.1)  # the switch's own turns: not counted
                figures[m] += _slice_worsts(a_tx, b_rx, seconds=1.2, slice_seconds=0.4)
    finally:
        stop.set()
        other.join(180)
    assert other.exitcode == 0
    sent, replies, refused, stuck = result[:]
    assert replies == sent, "the spammer was not answered every SEND"
    # Neither target answers: every SEND fails, none waits forever.
    assert refused == sent
    assert 0 < stuck < sent

    control, beside_stuck = (statistics.median(figures[m]) for m in (0, 1))
    bound = 3 * control + 0.050
    print(f"median worst round trip per 0.4 s slice: control {control * 1000:.2f} ms, beside the "
          f"stuck receiver {beside_stuck * 1000:.2f} ms ({len(figures[0])}/{len(figures[1])} slices); "
          f"spammer: {refused} ERROR 102 of {sent}, {stuck} to stuck")
    assert beside_stuck <= bound, (
        f"beside the stuck receiver {beside_stuck * 1000:.1f} ms, control {control * 1000:.1f} ms: "
        f"over 3x + 50 ms ({bound * 1000:.1f} ms)")


def test_half_sent_message_is_dropped_others_served(relay):
    _, port = relay("--message-timeout", "0.5")
    loris = connect(port)
    loris.sendall(b"REGISTER TOSE")
    a_tx, a_rx = register(port, b"alice")
    b_tx, b_rx = register(port, b"bob")
    a_tx.sendall(send(b"bob", b"meanwhile"))
    recv_exactly(b_rx, len(forward(b"alice", b"meanwhile")))
    b_rx.sendall(b"RECEIVED alice\n\n")
    assert recv_until(a_tx) == b"SENT bob\n\n"
    assert closed_by_peer(loris, timeout=5)


def test_clients_chat_through_pipes(relay, start):
    server, port = relay()
    bob = start("imrelay", "bob", "127.0.0.1", "--port", port, stdin=subprocess.PIPE)
    bob.wait_line(r"^connected as bob", stream="stdout")
    alice = start("imrelay", "alice", "127.0.0.1", "--port", port, stdin=subprocess.PIPE)
    alice.wait_line(r"^connected as alice", stream="stdout")
    bob.wait_line(r"^\* alice joined$", stream="stdout")
    alice.popen.stdin.write(b"@bob hello there\n@nobody hi\n/who\n@ALL to everyone\n")
    alice.popen.stdin.flush()
    bob.wait_line(r"^alice: hello there$", stream="stdout")
    alice.wait_line(r"^delivered to bob$", stream="stdout")
    alice.wait_line(r"^! not delivered to nobody: ERROR 102 Unable to send$", stream="stdout")
    alice.wait_line(r"^online: alice bob$", stream="stdout")
    bob.wait_line(r"^alice: to everyone$", stream="stdout")
    alice.wait_line(r"^delivered to ALL$", stream="stdout")
    alice.popen.stdin.write(b"/quit\n")
    alice.popen.stdin.flush()
    assert alice.popen.wait(10) == 0
    bob.wait_line(r"^\* alice left$", stream="stdout")
    bob.popen.stdin.close()
    assert bob.popen.wait(10) == 0
    assert server.stop() == 0
    assert server.stderr_lines[-1] == "stopped"


def test_tool_errors_are_one_sentence(relay, start):
    server, port = relay()
    clash = start("imrelayd", "--port", port)
    assert clash.popen.wait(10) == 1
    assert any("already in use" in line for line in clash.stderr_lines)
    bad = start("imrelayd", "--port", "70000")
    assert bad.popen.wait(10) == 2
    assert "--port" in bad.stderr_lines[0]
    unknown = start("imrelay", "bob")
    assert unknown.popen.wait(10) == 2
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    unreachable = start("imrelay", "bob", "127.0.0.1", "--port", closed_port)
    assert unreachable.popen.wait(10) == 1
    assert "connection refused" in unreachable.stderr_lines[0]
    a = start("imrelay", "alice", "127.0.0.1", "--port", port, stdin=subprocess.PIPE)
    a.wait_line(r"^connected as alice", stream="stdout")
    taken = start("imrelay", "alice", "127.0.0.1", "--port", port)
    assert taken.popen.wait(10) == 1
    assert "already taken" in taken.stderr_lines[0]
    help_text = subprocess.run([server.args[0], "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--receiver-timeout" in help_text.stdout
