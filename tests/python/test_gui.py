"""The seed-001 chat window (examples/python/messenger_gui.py) under Xvfb:
two windows against a real relay server, driven with Tk's own events
(keys typed with event_generate, clicks on the list, buttons invoked)."""

import gc
import hashlib
import importlib.util
import os
import re
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

import improto
from conftest import REPO, TIMEOUT, Tool

STRICT = os.environ.get("IMPROTO_EXPECT_INSTALLED") == "1"  # scripts/test.sh: nothing may be missing


def _need(ok, why):
    if not ok:
        if STRICT:
            pytest.fail(f"{why} (scripts/test.sh installs it)")
        pytest.skip(why)


try:
    import tkinter
except ImportError:  # Debian: python3-tk
    tkinter = None


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "python" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def display():
    """A private Xvfb; -displayfd picks a free display number and says when it is ready."""
    _need(tkinter is not None, "tkinter is not installed (Debian: python3-tk)")
    _need(shutil.which("Xvfb"), "Xvfb is not installed (Debian: xvfb)")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1024x768x24",
                             "-nolisten", "tcp", "-noreset"],
                            pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_end)
    try:
        number = b""
        deadline = time.monotonic() + TIMEOUT
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                pytest.fail("Xvfb did not start in time")
            chunk = os.read(read_end, 16)
            if not chunk:
                pytest.fail(f"Xvfb exited: {proc.stderr.read().decode(errors='replace')}")
            number += chunk
        name = f":{int(number)}"
        old = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = name
        yield name
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
    finally:
        os.close(read_end)
        proc.terminate()
        proc.wait(TIMEOUT)


def transcripts(roots):
    """Every window's transcript, for failure messages."""
    out = []
    for r in roots:
        texts = [w for w in r.winfo_children() for w in [w, *w.winfo_children()] if w.winfo_class() == "Text"]
        out += [f"--- {r.title()}:", *(t.get("1.0", "end-1c") for t in texts)]
    return "\n".join(out)


def pump(roots, condition, what, timeout=TIMEOUT):
    """Runs the Tk event loops until condition() holds; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for r in roots:
            r.update()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; transcripts:\n{transcripts(roots)}")
        time.sleep(0.005)


KEYSYMS = {" ": "space", "-": "minus", ".": "period", ",": "comma", "!": "exclam", "?": "question",
           ":": "colon"}


def type_into(root, widget, text):
    """Types text into an Entry with generated key events, as a keyboard would."""
    widget.focus_force()
    root.update()
    for ch in text:
        widget.event_generate("<KeyPress>", keysym=KEYSYMS.get(ch, ch))
    root.update()
    assert widget.get().endswith(text), widget.get()


def click_list_item(root, listbox, label):
    """Clicks the list entry shown as label (press and release of button 1)."""
    index = list(listbox.get(0, "end")).index(label)
    x, y, w, h = listbox.bbox(index)
    listbox.event_generate("<ButtonPress-1>", x=x + 2, y=y + h // 2)
    listbox.event_generate("<ButtonRelease-1>", x=x + 2, y=y + h // 2)
    root.update()


def screenshot(root, path):
    """Saves the window as a PNG; False when no tool can (the test goes on)."""
    root.update()
    x, y = root.winfo_rootx(), root.winfo_rooty()
    w, h = root.winfo_width(), root.winfo_height()
    try:
        from PIL import ImageGrab  # Debian: python3-pil (X11 capture through xcb)
        ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=os.environ["DISPLAY"]).save(path)
        return True
    except Exception as exc:  # no PIL, or one built without xcb: try ImageMagick
        reason = exc
    if shutil.which("import"):
        r = subprocess.run(["import", "-window", str(root.winfo_id()), str(path)],
                           capture_output=True, timeout=TIMEOUT)
        if r.returncode == 0:
            return True
        reason = r.stderr.decode(errors="replace")
    print(f"no screenshot: {reason}")
    return False


@pytest.fixture(autouse=True)
def tk_freed_on_this_thread():
    """A Tk interpreter must be deleted by the thread that made it. A window
    left in a reference cycle was collected once by a download's watcher
    thread in a later test, and Tcl aborted the whole run (Fatal Python
    error: Aborted, "Garbage-collecting" on that thread). So every test's
    Tk objects are collected here, on the main thread, and none may remain."""
    gc.collect()
    yield
    gc.collect()
    left = [o for o in gc.get_objects() if tkinter is not None and isinstance(o, tkinter.Tk)]
    assert not left, f"{len(left)} Tk interpreter(s) outlived the test"


@pytest.fixture
def gui():
    return load_example("messenger_gui")


def workers_alive():
    return [t.name for t in threading.enumerate() if t.name.startswith("messenger-")]


def test_two_windows_chat_through_a_relay_server(display, gui, tmp_path):
    _need(hasattr(improto, "RelayClient"), "improto.RelayClient is missing")
    factory_of = lambda port: (lambda nick: improto.RelayClient(nick, "127.0.0.1", port, timeout=TIMEOUT))
    with improto.RelayServer() as relay:
        factory = factory_of(relay.port)
        roots = [tkinter.Tk(), tkinter.Tk()]
        try:
            # Alice picks her nickname in the prompt.
            prompt = gui.NicknamePrompt(roots[0])
            pump(roots, lambda: prompt.entry.winfo_viewable(), "the nickname prompt")
            type_into(roots[0], prompt.entry, "alice")
            prompt.ok.invoke()
            assert prompt.result == "alice"
            alice = gui.MessengerWindow(roots[0], factory, prompt.result)
            bob = gui.MessengerWindow(roots[1], factory, "bob")
            assert str(alice.send_all_button["state"]) == "disabled"  # not connected yet

            alice.start_button.invoke()
            pump(roots, lambda: alice.client is not None, "alice connected")
            assert alice.online == ["alice"]
            bob.start_button.invoke()
            pump(roots, lambda: bob.client is not None, "bob connected")
            assert bob.online == ["alice", "bob"]
            # Alice learns of bob from the presence notice.
            pump(roots, lambda: "* bob joined" in alice.transcript_text(), "the JOINED notice")
            pump(roots, lambda: list(alice.users.get(0, "end")) == ["alice", "bob"], "bob in alice's list")

            # Bob picks alice in his list and sends privately.
            click_list_item(roots[1], bob.users, "alice")
            assert bob.to_entry.get() == "alice"
            type_into(roots[1], bob.message_entry, "Hi Alice, lunch at noon?")
            bob.send_private_button.invoke()
            pump(roots, lambda: "bob: Hi Alice, lunch at noon?" in alice.transcript_text(), "the private message")
            pump(roots, lambda: "me -> alice: Hi Alice, lunch at noon?" in bob.transcript_text(), "bob's SENT")

            # ... and to everyone.
            type_into(roots[1], bob.message_entry, "Meeting moved to 3pm")
            bob.send_all_button.invoke()
            pump(roots, lambda: "bob: Meeting moved to 3pm" in alice.transcript_text(), "the message to all")
            pump(roots, lambda: "me -> ALL: Meeting moved to 3pm" in bob.transcript_text(), "bob's SENT ALL")

            # Alice answers a typed recipient, and one that is not there.
            type_into(roots[0], alice.to_entry, "bob")
            type_into(roots[0], alice.message_entry, "Sounds good")
            alice.send_private_button.invoke()
            pump(roots, lambda: "alice: Sounds good" in bob.transcript_text(), "alice's answer")
            alice.to_entry.delete(0, "end")
            type_into(roots[0], alice.to_entry, "dave")
            type_into(roots[0], alice.message_entry, "are you there")
            alice.send_private_button.invoke()
            pump(roots, lambda: "! not delivered to dave" in alice.transcript_text(), "ERROR for dave")

            alice.files_button.invoke()
            # The file list, or the server's refusal (a relay without the file
            # service answers ERROR 105): either way shown in the transcript.
            pump(roots, lambda: re.search(r"^(\* the server has no files|\* file |! cannot list files: .*ERROR 105)",
                                          alice.transcript_text(), re.M), "the file list")

            out = Path(os.environ.get("IMPROTO_TEST_OUTPUT", tmp_path))
            out.mkdir(parents=True, exist_ok=True)
            shot = out / "messenger_gui_alice.png"
            if screenshot(roots[0], shot):
                assert shot.stat().st_size > 1000
                print(f"screenshot: {shot}")

            # Bob logs out: alice sees him leave.
            bob.logout_button.invoke()
            assert bob.client is None and bob.online == []
            assert str(bob.start_button["state"]) == "normal"
            pump(roots, lambda: "* bob left" in alice.transcript_text(), "the LEFT notice")
            pump(roots, lambda: list(alice.users.get(0, "end")) == ["alice"], "bob gone from the list")

            alice.close()
            bob.close()
            roots = []
            assert workers_alive() == []
        finally:
            for r in roots:
                r.destroy()


def test_download_dialog_against_imrelayd(display, gui, tmp_path):
    """The seed's download window against a real imrelayd --files: the file
    list, progress, "Stop" / "Continue", "Cancel" and the final hash."""
    served, out = tmp_path / "served", tmp_path / "out"
    served.mkdir()
    out.mkdir()
    # Over the receiver's 4 MiB window, so a rate-limited transfer stays
    # open on the server long enough to be stopped and cancelled.
    data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(16 * (1 << 20) // 32))
    (served / "big.bin").write_bytes(data)
    (served / "notes.txt").write_bytes(b"seed 001\n")
    tool = Tool("imrelayd", "--port", 0, "--files", served)
    roots = []
    try:
        host, port = tool.listening()
        factory = lambda nick: improto.RelayClient(nick, host, port, timeout=TIMEOUT)
        roots = [tkinter.Tk()]
        alice = gui.MessengerWindow(roots[0], factory, "alice", download_dir=str(out),
                                    rate_limit=3_000_000)
        assert str(alice.download_button["state"]) == "disabled"
        alice.start_button.invoke()
        pump(roots, lambda: alice.client is not None, "alice connected")
        alice.download_button.invoke()
        dialog = alice.dialogs[0]
        pump(roots, lambda: dialog.file_list.size() == 2, "the server's files in the dialog")
        assert list(dialog.file_list.get(0, "end")) == ["big.bin  (16.0 MiB)", "notes.txt  (9 bytes)"]
        assert str(dialog.stop_button["state"]) == "disabled"

        # Pick big.bin; download; stop; continue; the checked result.
        click_list_item(roots[0], dialog.file_list, "big.bin  (16.0 MiB)")
        dialog.download_button.invoke()
        pump(roots, lambda: dialog.download is not None and dialog.progress_bar["value"] > 0,
             "the first bytes")
        assert str(dialog.download_button["state"]) == "disabled"
        dialog.stop_button.invoke()
        pump(roots, lambda: str(dialog.continue_button["state"]) == "normal", "the download stopped")
        assert dialog.download.paused and "stopped" in dialog.status.get()
        assert str(dialog.stop_button["state"]) == "disabled"
        dialog.continue_button.invoke()
        pump(roots, lambda: str(dialog.stop_button["state"]) == "normal" or dialog.result is not None,
             "the download continued")
        pump(roots, lambda: dialog.result is not None, "the download's end", timeout=TIMEOUT * 3)
        sha = hashlib.sha256(data).hexdigest()
        assert dialog.result.sha256 == sha and (out / "big.bin").read_bytes() == data
        assert f"SHA-256 {sha}" in dialog.status.get()
        assert f"last byte at offset {len(data) - 1} (0x{data[-1]:02x})" in dialog.status.get()
        assert dialog.progress_bar["value"] == 100.0
        assert f"* downloaded big.bin: {len(data)} bytes, sha256 {sha}" in alice.transcript_text()

        out_dir = Path(os.environ.get("IMPROTO_TEST_OUTPUT", tmp_path))
        out_dir.mkdir(parents=True, exist_ok=True)
        if screenshot(dialog.top, out_dir / "messenger_gui_download.png"):
            print(f"screenshot: {out_dir / 'messenger_gui_download.png'}")

        # Again, and cancel: the part file goes.
        (out / "big.bin").unlink()
        dialog.download_button.invoke()
        pump(roots, lambda: dialog.download is not None and dialog.progress_bar["value"] > 0,
             "the first bytes again")
        dialog.cancel_button.invoke()
        pump(roots, lambda: dialog.download is None and dialog.error is not None, "the cancellation")
        assert isinstance(dialog.error, improto.CancelledError)
        assert "cancelled" in dialog.status.get()
        assert not list(out.glob("big.bin*"))
        assert str(dialog.download_button["state"]) == "normal"

        # A small one by double-click.
        index = list(dialog.file_list.get(0, "end")).index("notes.txt  (9 bytes)")
        dialog.file_list.selection_clear(0, "end")
        dialog.file_list.selection_set(index)
        x, y, w, h = dialog.file_list.bbox(index)
        for _ in range(2):  # two clicks in a row: Tk makes the second a double-click
            dialog.file_list.event_generate("<ButtonPress-1>", x=x + 2, y=y + h // 2)
            dialog.file_list.event_generate("<ButtonRelease-1>", x=x + 2, y=y + h // 2)
        pump(roots, lambda: dialog.result is not None and dialog.result.file == "notes.txt", "notes.txt")
        assert (out / "notes.txt").read_bytes() == b"seed 001\n"

        alice.close()
        roots = []
        assert workers_alive() == []
    finally:
        for r in roots:
            r.destroy()
        tool.stop()
