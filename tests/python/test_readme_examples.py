"""The README's Python examples run as written: each ```python block of the
"Python" section that shows its output runs in a fresh interpreter, and
every `# -> text` comment is a line it must print, in that order."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, TIMEOUT


def python_blocks():
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Python\n(.*?)(?=^## )", readme + "\n## end", re.S | re.M).group(1)
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    # The codec block shows values inline, one of them an exception: not a script.
    return [b for b in blocks if expected_lines(b)]


def expected_lines(code):
    return [m.group(1).strip() for m in re.finditer(r"# -> (.*)$", code, re.M)]


def test_the_section_has_one_example_per_protocol():
    blocks = python_blocks()
    for cls in ("RegistryClient", "BuddyClient", "RelayClient"):
        assert any(cls in b for b in blocks), f"no README example uses improto.{cls}"
    assert len(blocks) >= 4


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs_as_written(index, tmp_path):
    code = python_blocks()[index]
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=TIMEOUT * 3)
    assert r.returncode == 0, f"example {index} failed:\n{code}\n{r.stderr}"
    printed = [line.strip() for line in r.stdout.splitlines()]
    wanted = expected_lines(code)
    assert printed == wanted, f"example {index} printed {printed}, README says {wanted}"


# The scripts in examples/python the README points to.
EXAMPLES = REPO / "examples" / "python"


def load_example(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_echo_bot_answers_every_message():
    import queue
    import improto
    with improto.RelayServer() as relay:
        bot = subprocess.Popen([sys.executable, str(EXAMPLES / "echo_bot.py"), "--port", str(relay.port),
                                "--count", "2"], stdout=subprocess.PIPE, text=True)
        try:
            assert bot.stdout.readline().startswith("echo is online")
            inbox = queue.Queue()
            with improto.RelayClient("dana", relay.host, relay.port, timeout=TIMEOUT, on_event=inbox.put) as dana:
                dana.send("echo", "hello")
                assert inbox.get(timeout=TIMEOUT).body == b"echo: hello"
                dana.send("echo", b"caf\xc3\xa9")
                assert inbox.get(timeout=TIMEOUT).body == "echo: café".encode()
            assert bot.wait(TIMEOUT) == 0  # --count 2: it leaves after two answers
            assert bot.stdout.read().splitlines() == ["answered dana: hello", "answered dana: café"]
        finally:
            bot.kill()
            bot.wait()


def test_buddy_watch_reports_changes():
    watch = load_example("buddy_watch")
    assert watch.changes({}, {"bob": "offline"}) == ["bob: offline"]
    assert watch.changes({"bob": "offline"}, {"bob": "online 10.0.0.1:4000"}) == [
        "bob: offline -> online 10.0.0.1:4000"]
    assert watch.changes({"bob": "offline", "eve": "offline"}, {"bob": "offline"}) == ["eve: no longer a buddy"]
    assert watch.changes({"bob": "offline"}, {"bob": "offline"}) == []


def test_buddy_watch_against_a_server():
    import improto
    with improto.BuddyServer() as server, \
         improto.BuddyClient(server.host, tcp_port=server.port, udp_port=server.udp_port,
                             timeout=TIMEOUT) as client:
        for user in ("alice", "bob"):
            client.register(user)
        client.add("alice", "bob")
        args = [sys.executable, str(EXAMPLES / "buddy_watch.py"), "alice", server.host,
                "--tcp-port", str(server.port), "--udp-port", str(server.udp_port), "--rounds", "1"]
        first = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * 3)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == ["bob: offline"]
        client.set_status("bob", online=True, msgport=4000)
        second = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * 3)
        assert second.stdout.splitlines() == ["bob: online 127.0.0.1:4000"], second.stderr
