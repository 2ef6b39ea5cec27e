"""impeer (listen and send modes) with imregistryd, with seed-style Python
peers, and against the seed 004 server itself."""

import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import Proc, binary, connect


SANITIZER_REPORT = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture
def tools(start):
    """start() for imregistryd and impeer; after the test each must have
    exited (or exit on SIGTERM) without a sanitizer report."""
    procs = []

    def _start(name, *args, stdin=subprocess.DEVNULL):
        proc = start(name, *args, stdin=stdin)
        procs.append(proc)
        return proc
    yield _start
    for proc in procs:
        proc.stop()
        report = [line for line in proc.stderr_lines if any(s in line for s in SANITIZER_REPORT)]
        assert not report, proc.stderr_lines


@pytest.fixture
def registry(tools, tmp_path):
    proc = tools("imregistryd", "--port", "0", "--data", tmp_path)
    yield proc.listening()[1]
    assert proc.stop() == 0


def peer(tools, name, port, mode, stdin=subprocess.PIPE):
    return tools("impeer", name, f"127.0.0.1:{port}", mode, stdin=stdin)


def listen(tools, name, port, stdin=subprocess.PIPE):
    """A listen-mode impeer, once it is registered and receiving."""
    p = peer(tools, name, port, "listen", stdin=stdin)
    m = p.wait_line(r"^impeer: registered (\S+)@([\d.]+):(\d+) on ")
    assert m.group(1) == name
    p.address = (m.group(2), int(m.group(3)))
    return p


def say(proc, line):
    proc.popen.stdin.write(line.encode() + b"\n")
    proc.popen.stdin.flush()


def wait_stdout(proc, count, timeout=10.0):
    """The first `count` stdout lines, once there are that many."""
    deadline = time.monotonic() + timeout
    while len(proc.stdout_lines) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} lines, got {proc.stdout_lines!r} "
                                 f"(stderr {proc.stderr_lines!r})")
        time.sleep(0.01)
    return proc.stdout_lines[:count]


def seed_get_users(port):
    """The seed client's updateUsers(), byte for byte."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    a = []
    listReq = ["GET %s HTTP/1.1" % ("/" + "userlist.txt"), "Host: %s" % "127.0.0.1"]
    s.send(("\r\n".join(listReq) + "\r\n\r\n").encode())
    listResult = s.recv(2048).decode().split("\r\n")
    if "200" in listResult[0]:
        listBody = listResult[listResult.index("") + 1]
        for user in listBody.split(","):
            if user != "":
                a.append(user)
            else:
                break
    s.close()
    return a


def seed_listen_register(port, username):
    """The seed's listen mode: register the TCP connection's own address,
    then bind a UDP socket to it. Returns the bound socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    clientIP, clientPort = s.getsockname()
    register = "REGISTER %s" % (username + "@" + clientIP + ":" + str(clientPort))
    lines = ["POST %s HTTP/1.1" % ("/" + "userlist.txt"), "Host: %s" % "127.0.0.1",
             "Content-Type: %s" % "text/*", "Content-Length: %s" % len(register), "", "%s" % register]
    s.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    result = s.recv(2048).decode().split("\r\n")
    assert "200" in result[0], result
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((clientIP, clientPort))
    u.settimeout(5)
    return u


def seed_send_p2p(userAddressPort, message, username):
    """The seed's sendMessageP2P()."""
    message = username + ": " + message
    sendAddressPort = userAddressPort[userAddressPort.find("@") + 1:]
    sendAddress = sendAddressPort[:sendAddressPort.find(":")]
    sendPort = sendAddressPort[sendAddressPort.find(":") + 1:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(message.encode(), (sendAddress, int(sendPort)))
    s.close()


# ------------------------------------------------------------------- tests

def test_listen_and_send_through_pipes(tools, registry):
    port = registry
    alice = listen(tools, "alice", port)
    carol = listen(tools, "carol", port)
    bob_in = listen(tools, "bob", port)
    bob = peer(tools, "bob", port, "send")
    say(bob, "list")
    assert wait_stdout(bob, 4) == ["The online users are:", "alice", "carol", "bob"]
    say(bob, 'unicast alice "hello alice"')
    assert wait_stdout(alice, 1) == ["bob: hello alice"]
    say(bob, 'multicast [alice, carol, zed] "hi both"')
    say(bob, 'broadcast "to everyone, with: colons"')
    say(bob, 'unicast bob "marker"')
    say(bob, "unicast nobody x")
    say(bob, "frobnicate")
    out = wait_stdout(bob, 13)[4:]
    assert out == ["message is sent to alice",
                       "message is sent to alice", "message is sent to carol", "user zed is not found",
                       "message is sent to alice", "message is sent to carol",
                       "message is sent to bob", "user nobody is not found",
                       'Invalid command! commands: list | unicast NAME "text" | multicast [NAME, NAME] '
                       '"text" | broadcast "text" | logout | exit']
    assert wait_stdout(alice, 3) == ["bob: hello alice", "bob: hi both", "bob: to everyone, with: colons"]
    assert wait_stdout(carol, 2) == ["bob: hi both", "bob: to everyone, with: colons"]
    # Broadcast skipped bob's own listener: the marker is the only line it got.
    assert wait_stdout(bob_in, 1) == ["bob: marker"]
    time.sleep(0.1)
    assert bob_in.stdout_lines == ["bob: marker"]
    say(bob, "exit")
    assert bob.popen.wait(10) == 0

    for p in (alice, carol, bob_in):
        assert p.stop() == 0
        p.wait_line(r"^impeer: logged out \w+@127\.0\.0\.1:\d+$")
    assert seed_get_users(port) == []


def test_seed_style_peer_receives_from_impeer_send(tools, registry):
    port = registry
    lara = seed_listen_register(port, "Lara")
    utku = peer(tools, "Utku", port, "send")
    say(utku, 'unicast Lara "Merhaba Lara"')
    assert wait_stdout(utku, 1) == ["message is sent to Lara"]
    assert lara.recv(2048) == b"Utku: Merhaba Lara"
    say(utku, 'broadcast "Herkese merhaba!"')
    assert lara.recv(2048) == b"Utku: Herkese merhaba!"
    say(utku, "exit")
    assert utku.popen.wait(10) == 0


def test_impeer_listen_receives_seed_style_datagrams(tools, registry):
    port = registry
    lara = listen(tools, "Lara", port)
    users = seed_get_users(port)
    assert users == [f"Lara@{lara.address[0]}:{lara.address[1]}"]
    seed_send_p2p(users[0], "Merhaba Lara", "Utku")
    seed_send_p2p(users[0], "Nice app!", "Defne")
    assert wait_stdout(lara, 2) == ["Utku: Merhaba Lara", "Defne: Nice app!"]
    # Not a peer message: reported on stderr, not printed as one.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"no separator here", lara.address)
    lara.wait_line(r"^impeer: ignored a datagram from 127\.0\.0\.1:\d+: ")
    assert lara.stdout_lines == ["Utku: Merhaba Lara", "Defne: Nice app!"]


def test_largest_datagram(tools, registry):
    port = registry
    alice = listen(tools, "alice", port)
    bob = peer(tools, "bob", port, "send")
    biggest = "x" * (65507 - len("bob: "))
    say(bob, f'unicast alice "{biggest}"')
    say(bob, f'unicast alice "{biggest}y"')
    assert wait_stdout(bob, 2) == [
        "message is sent to alice",
        "message not sent: datagram too large: 65508 bytes, at most 65507"]
    assert wait_stdout(alice, 1) == ["bob: " + biggest]


def test_listen_leaves_on_logout_line_and_survives_stdin_eof(tools, registry):
    port = registry
    quiet = listen(tools, "quiet", port, stdin=subprocess.DEVNULL)
    chatty = listen(tools, "chatty", port)
    time.sleep(0.3)
    assert quiet.popen.poll() is None  # the end of stdin does not end listen mode
    say(chatty, "hello?")
    chatty.wait_line(r"^impeer: listen mode understands only 'logout' and 'exit'$")
    say(chatty, "logout")
    assert chatty.popen.wait(10) == 0
    assert [u.split("@")[0] for u in seed_get_users(port)] == ["quiet"]
    assert quiet.stop(signal.SIGINT) == 0
    assert seed_get_users(port) == []


def test_send_mode_logout_ends_the_names_registration(tools, registry):
    port = registry
    dana = listen(tools, "dana", port)
    other = peer(tools, "dana", port, "send")
    say(other, "logout")
    assert wait_stdout(other, 1) == ["dana is logged out"]
    assert other.popen.wait(10) == 0
    assert seed_get_users(port) == []
    # The listener leaves later without complaint.
    assert dana.stop() == 0
    dana.wait_line(r"was logged out already$")
    nobody = peer(tools, "nobody", port, "send")
    say(nobody, "logout")
    assert wait_stdout(nobody, 1) == ["nobody is not registered"]
    assert nobody.popen.wait(10) == 0


def test_send_mode_end_of_input_and_empty_list(tools, registry):
    port = registry
    bob = peer(tools, "bob", port, "send")
    say(bob, "list")
    say(bob, 'broadcast "anyone?"')
    bob.popen.stdin.close()
    assert bob.popen.wait(10) == 0
    assert bob.stdout_lines == ["There are no online users.", "There are no other online users."]


SEED_SERVER = r'''
import socket
import sys

input = sys.argv[1]

serverURL = input[:input.find(':')]
serverPort = int(input[input.find(':')+1:])

userListAppend = open("userlist.txt", "a")
userListRead = open("userlist.txt", "r")

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((serverURL, serverPort))
s.listen(10)

clientPort = s.getsockname()
print("listening on %s:%d" % clientPort, file=sys.stderr, flush=True)  # test harness only

while True:
    clientSocket, address = s.accept()
    data = clientSocket.recv(2048)
    userListAppend = open("userlist.txt", "a")
    userListRead = open("userlist.txt", "r")

    if data:
        result = data.decode().split("\r\n")
        body = result[result.index('')+1]
        print(result)

        if "POST" in result[0] and "REGISTER" in body:
            username = body[body.find('REGISTER')+9:body.find('@')]

            found = False
            for line in userListRead.read().split():
                if line[:line.find('@')] == username:
                    found = True
                    break

            if found:
                lines = [
                    'HTTP/1.1 406 Not Acceptable'
                ]
            elif any(char in ":@" for char in username):
                lines = [
                    'HTTP/1.1 400 Bad Request'
                ]
            else:
                userListAppend.write(body[body.find('REGISTER')+9:] + '\n')
                lines = [
                    'HTTP/1.1 200 OK'
                ]
            response = '\r\n'.join(lines)+'\r\n\r\n'
            clientSocket.send(response.encode())
        elif "GET" in result[0] and "userlist.txt" in result[0]:
            users = ""
            for line in userListRead:
                if line != '':
                    users += line.strip() + ','
                else:
                    break
            if users == '':
                listResponse = [
                    'HTTP/1.1 400 Bad Request'
                ]
            else:
                listResponse = [
                    'HTTP/1.1 200 OK',
                    '',
                    '%s' % users
                ]
            listResponse = '\r\n'.join(listResponse)+'\r\n\r\n'
            clientSocket.send(listResponse.encode())
    userListAppend.close()
    userListRead.close()

    clientSocket.close()

s.close()

userListAppend.close()
userListRead.close()
'''


def test_impeer_with_the_seed_server(tools, tmp_path):
    script = tmp_path / "MessageServer.py"
    script.write_text(SEED_SERVER)
    seed = Proc([sys.executable, "-u", str(script), "127.0.0.1:0"], cwd=tmp_path)
    try:
        port = seed.listening()[1]
        bob = peer(tools, "bob", port, "send")
        say(bob, "list")
        assert wait_stdout(bob, 1) == ["There are no online users."]
        alice = listen(tools, "alice", port)
        taken = peer(tools, "alice", port, "listen")
        assert taken.popen.wait(10) == 1
        taken.wait_line(rf"^impeer: the name 'alice' is already registered on 127\.0\.0\.1:{port}$")
        say(bob, "list")
        say(bob, 'unicast alice "from a seed registry"')
        assert wait_stdout(bob, 4)[1:] == ["The online users are:", "alice", "message is sent to alice"]
        assert wait_stdout(alice, 1) == ["bob: from a seed registry"]
        say(bob, "exit")
        assert bob.popen.wait(10) == 0
        # The seed's base server has no LOGOUT (only its bonus version does):
        # it closes without answering, and impeer says so.
        assert alice.stop() == 1
        alice.wait_line(r"^impeer: could not log out alice@127\.0\.0\.1:\d+: .*without answering")
    finally:
        seed.stop(signal.SIGKILL)


def run_peer(*args, stdin=None, timeout=20):
    return subprocess.run([binary("impeer"), *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_errors_are_sentences_with_exit_codes(tools, registry):
    port = registry
    listen(tools, "alice", port)
    started = time.monotonic()
    done = run_peer("alice", f"127.0.0.1:{port}", "listen")
    assert done.returncode == 1
    assert done.stderr == f"impeer: the name 'alice' is already registered on 127.0.0.1:{port}\n"

    closed = free_port()
    done = run_peer("bob", f"127.0.0.1:{closed}", "listen")
    assert done.returncode == 1
    assert done.stderr == (f"impeer: cannot connect to 127.0.0.1:{closed}: connection refused "
                           "(is the server running?)\n")
    done = run_peer("bob", f"127.0.0.1:{closed}", "send", stdin='list\nunicast a "x"\n')
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("connection refused") == 2
    assert time.monotonic() - started < 10  # never a hang

    # A server that accepts but never answers: the --timeout bounds the wait.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        t0 = time.monotonic()
        done = run_peer("bob", "127.0.0.1:%d" % mute.getsockname()[1], "listen", "--timeout", "0.5")
        assert done.returncode == 1 and "no answer from" in done.stderr, done.stderr
        assert time.monotonic() - t0 < 5

    for args in (["--bogus"], [], ["bob"], ["bob", "127.0.0.1:1"], ["a:b", "127.0.0.1:1", "send"],
                 ["a b", "127.0.0.1:1", "send"], ["bob", "127.0.0.1", "send"],
                 ["bob", "127.0.0.1:1", "shout"], ["bob", "127.0.0.1:0", "send"],
                 ["bob", "127.0.0.1:1", "send", "extra"], ["bob", "127.0.0.1:1", "send", "--timeout", "x"]):
        done = run_peer(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("impeer: ") and "--help" in done.stderr, (args, done.stderr)
    done = run_peer("--help")
    assert done.returncode == 0
    for text in ("NAME HOST:PORT listen|send", "list", "unicast NAME", "multicast [NAME, NAME]",
                 "broadcast", "logout", "exit", "--timeout"):
        assert text in done.stdout
