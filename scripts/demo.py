#!/usr/bin/python3
"""The demo: starts each server on a free loopback port, drives scripted
clients through every feature, prints the conversation as it happens, and
stops everything cleanly.

    demo.py TOOLS_DIR [PYTHON]

PYTHON is an interpreter with the improto package installed (demo.sh makes
a venv): with it, the Python section runs examples/python/echo_bot.py.
"""

import hashlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build-release" / "tools"
PYTHON = sys.argv[2] if len(sys.argv) > 2 else None
print_lock = threading.Lock()


def say(text):
    with print_lock:
        print(text, flush=True)


class Tool:
    """A running tool; its output is echoed with a label as it arrives."""

    def __init__(self, label, *args, stdin=False, cwd=None):
        self.label = label
        self.lines = {"stdout": [], "stderr": []}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            # A bare name is one of our tools; a path is run as it is.
            [str(args[0]) if "/" in str(args[0]) else str(BIN / args[0]), *map(str, args[1:])],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        for name in ("stdout", "stderr"):
            threading.Thread(target=self._pump, args=(name,), daemon=True).start()

    def _pump(self, name):
        stream = getattr(self.proc, name)
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines[name].append(line)
                self.cond.notify_all()
            if name == "stdout":
                say(f"  {self.label:>8} | {line}")
            else:
                say(f"  {self.label:>8} ! {line}")

    def wait_for(self, pattern, stream="stdout", timeout=15):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[stream]:
                    m = regex.search(line)
                    if m:
                        return m
                if time.monotonic() > deadline:
                    raise SystemExit(f"demo: {self.label} never printed /{pattern}/")
                self.cond.wait(0.1)

    def port(self, index=0):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = [m for m in (re.search(r"listening on \S+:(\d+)$", l) for l in list(self.lines["stderr"])) if m]
            if len(found) > index:
                return int(found[index].group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit(f"demo: {self.label} did not start: {self.lines['stderr']}")

    def type(self, line):
        say(f"  {self.label:>8} > {line}")
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        if code != 0:
            raise SystemExit(f"demo: {self.label} exited with {code}")


def section(title):
    say(f"\n=== {title} ===")


def relay_demo():
    section("Relay chat (seed 003): imrelayd + imrelay")
    server = Tool("imrelayd", "imrelayd", "--port", "0")
    port = server.port()
    bob = Tool("bob", "imrelay", "bob", "127.0.0.1", "--port", port, stdin=True)
    bob.wait_for("^connected as bob")
    carol = Tool("carol", "imrelay", "carol", "127.0.0.1", "--port", port, stdin=True)
    carol.wait_for("^connected as carol")
    alice = Tool("alice", "imrelay", "alice", "127.0.0.1", "--port", port, stdin=True)
    alice.wait_for("^connected as alice")
    bob.wait_for(r"^\* alice joined")
    alice.type("/who")
    alice.wait_for("^online:")
    alice.type("@bob Hi Bob, lunch at noon?")
    alice.wait_for("^delivered to bob")
    bob.type("@alice Sounds good!")
    alice.wait_for("^bob: Sounds good!")
    alice.type("@ALL Meeting moved to 3pm")
    alice.wait_for("^delivered to ALL")
    alice.type("@dave are you there?")
    alice.wait_for("^! not delivered to dave")
    for client in (alice, bob, carol):
        client.type("/quit")
        client.proc.wait(10)
    server.stop()


def generated_file(path, size):
    """Deterministic, incompressible bytes; returns their SHA-256 (hashlib's)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        n = 0
        while n * 32 < size:
            block = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(n, n + 32768))
            block = block[: size - n * 32]
            f.write(block)
            h.update(block)
            n += 32768
    return h.hexdigest()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_demo(data):
    section("File downloads over fast reliable UDP (seed 001): imrelayd --files + imrelay /files, /get")
    served, out = Path(data) / "served", Path(data) / "downloads"
    served.mkdir()
    out.mkdir()
    size = 48 << 20
    expected = generated_file(served / "seed001.bin", size)
    (served / "hello.txt").write_bytes(b"hello from seed 001\n")
    say(f"  served: seed001.bin ({size} bytes, sha256 {expected}), hello.txt")
    server = Tool("imrelayd", "imrelayd", "--port", "0", "--files", served)
    port = server.port()
    alice = Tool("alice", "imrelay", "alice", "127.0.0.1", "--port", port, "--no-presence", stdin=True)
    alice.wait_for("^connected as alice")
    alice.type("/files")
    alice.wait_for(r"^file: seed001\.bin \(%d bytes\)" % size)
    alice.type(f"/get seed001.bin {out}")
    m = alice.wait_for(r"^downloaded seed001\.bin: (\d+) bytes, sha256 ([0-9a-f]{64}), (.*) -> ", timeout=120)
    check_download("imrelay", int(m.group(1)), m.group(2), out / "seed001.bin", size, expected)
    alice.type("/quit")
    alice.proc.wait(10)
    if PYTHON:
        # The same file again from Python (improto.aio, examples/python/fetch.py).
        py_out = out / "python"
        py_out.mkdir()
        fetch = Tool("fetch.py", PYTHON, ROOT / "examples" / "python" / "fetch.py", "--port", port,
                     "--name", "dana", "seed001.bin", py_out)
        m = fetch.wait_for(r"^downloaded seed001\.bin: (\d+) bytes, sha256 ([0-9a-f]{64}), ", timeout=120)
        if fetch.proc.wait(15) != 0:
            raise SystemExit(f"demo: fetch.py exited with {fetch.proc.returncode}")
        check_download("fetch.py", int(m.group(1)), m.group(2), py_out / "seed001.bin", size, expected)
    server.stop()


def check_download(who, size, sha, path, want_size, want_sha):
    """The client's final line against hashlib's SHA-256 of the served file and of the copy."""
    got = sha256_of(path)
    if size != want_size or sha != want_sha or got != want_sha:
        raise SystemExit(f"demo: {who}'s download does not match: {size} bytes, sha256 {sha}; "
                         f"the copy's sha256 is {got}; the served file's {want_sha}")
    say(f"  hash check ({who}): the client's SHA-256 {sha} matches hashlib's of the served file "
        f"and of {path.name} as written")


def registry_demo(data):
    section("Registry + peer-to-peer UDP (seeds 000, 004): imregistryd + impeer")
    server = Tool("imregistryd", "imregistryd", "--port", "0", "--data", data)
    port = server.port()
    address = f"127.0.0.1:{port}"
    listeners = {}
    for name in ("Ali", "Veli", "Lara"):
        listeners[name] = Tool(name, "impeer", name, address, "listen", stdin=True)
        listeners[name].wait_for(r"registered", stream="stderr")
    utku = Tool("Utku", "impeer", "Utku", address, "send", stdin=True)
    utku.type("list")
    utku.wait_for("^Lara$")
    utku.type('unicast Lara "Merhaba Lara"')
    listeners["Lara"].wait_for("^Utku: Merhaba Lara$")
    utku.type('multicast [Ali, Veli, Ahmet] "Nice app!"')
    utku.wait_for("^user Ahmet is not found$")
    listeners["Veli"].wait_for("^Utku: Nice app!$")
    utku.type('broadcast "Herkese merhaba!"')
    for name in ("Ali", "Veli", "Lara"):
        listeners[name].wait_for("^Utku: Herkese merhaba!$")
    listeners["Ali"].type("logout")
    listeners["Ali"].proc.wait(10)
    utku.type("list")
    time.sleep(0.3)
    utku.type("exit")
    utku.proc.wait(10)
    for name in ("Veli", "Lara"):
        listeners[name].stop()
    server.stop()


def buddy_demo(data):
    section("Buddy list, status and direct chat (seed 002): imbuddyd + imbuddy")
    server = Tool("imbuddyd", "imbuddyd", "--tcp-port", "0", "--udp-port", "0", "--data", data)
    tcp, udp = server.port(0), server.port(1)
    ports = ("--tcp-port", tcp, "--udp-port", udp)
    alice = Tool("alice", "imbuddy", *ports, stdin=True)
    bob = Tool("bob", "imbuddy", *ports, stdin=True)
    alice.type("r alice")
    bob.type("r bob")
    time.sleep(0.5)
    alice.type("r bob")                 # taken: 203 USER EXISTS
    alice.type("a bob")
    bob.type("a alice")
    alice.type("a nobody")              # 202 NO SUCH USER
    alice.type("s")                     # bob has never been online
    time.sleep(0.5)
    bob.type("o")
    time.sleep(0.5)
    alice.type("s")
    alice.wait_for(r"bob.*(online|100)")
    alice.type("c bob")
    time.sleep(0.5)
    alice.type("Hi Bob, are you free?")
    bob.wait_for("alice: Hi Bob, are you free?")
    alice.type("q")
    time.sleep(0.5)
    for client in (alice, bob):
        client.type("x")
        client.proc.wait(10)
    server.stop()


def python_demo():
    section("Python (issue 9): examples/python/echo_bot.py answering a person, through imrelayd")
    server = Tool("imrelayd", "imrelayd", "--port", "0")
    port = server.port()
    bot = Tool("echo_bot", PYTHON, ROOT / "examples" / "python" / "echo_bot.py", "127.0.0.1",
               "--port", port, "--name", "echo", "--count", 2)
    bot.wait_for("^echo is online")
    person = Tool("dana", "imrelay", "dana", "127.0.0.1", "--port", port, stdin=True)
    person.wait_for("^connected as dana")
    person.type("@echo Hello bot, are you there?")
    person.wait_for("^echo: echo: Hello bot, are you there\\?")
    person.type("@echo Python says hi through the C++ server")
    person.wait_for("^echo: echo: Python says hi through the C\\+\\+ server")
    bot.proc.wait(15)  # --count 2: the bot leaves after its second answer
    if bot.proc.returncode != 0:
        raise SystemExit(f"demo: echo_bot exited with {bot.proc.returncode}")
    person.type("/quit")
    person.proc.wait(10)
    server.stop()


def main():
    if not (BIN / "imrelayd").exists():
        raise SystemExit(f"demo: no tools in {BIN}; run scripts/demo.sh")
    with tempfile.TemporaryDirectory(prefix="improto-demo-") as data:
        registry_demo(data)
        buddy_demo(data)
        relay_demo()
        download_demo(data)
        if PYTHON:
            python_demo()
    section("Done: every server stopped cleanly")


if __name__ == "__main__":
    main()
