#!/usr/bin/env python3
"""The seed-001 chat window over the relay protocol (Tkinter + improto).

    python3 messenger_gui.py [HOST] [--port PORT] [--name NICKNAME]
                             [--downloads DIR] [--limit-rate BYTES_PER_S]

A nickname prompt, then the chat window: "Start" connects (both relay
sockets) and subscribes to presence; the "Online" list follows the JOINED /
LEFT notices, which also appear in the transcript; "Send all" and "Send
private" (to the user typed in "To", or picked from the list) send the
message box; "Show server files" lists the server's files; "Download..."
opens the seed's download window (the server's files, a progress bar with
bytes, rate and time left, "Stop" and "Continue" to pause and resume,
"Cancel", and at the end the file's SHA-256 and its last byte); "Log out"
disconnects.

Threads: every blocking client call runs on one worker thread, incoming
events are read on a reader thread, a running download's progress comes
from its own thread, and all hand their results to the Tk thread through a
queue polled with ``after`` - Tk is only ever called from the thread that
runs its main loop.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Optional

try:  # the package is needed to talk to a server, not to build the window
    import improto
except ImportError:  # pragma: no cover - main() reports it
    improto = None

POLL_MS = 20  # how often the Tk thread drains the event queue
# improto.TimeoutError is also the builtin TimeoutError: receive()'s "nothing yet".
builtins_timeout = TimeoutError

ClientFactory = Callable[[str], Any]  # nickname -> an unconnected improto.RelayClient


def _text(body: Any) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def _describe_error(exc: BaseException) -> str:
    code, text = getattr(exc, "code", None), str(exc)
    return f"{text} (ERROR {code})" if code and f"ERROR {code}" not in text else text


class NicknamePrompt:
    """The modal "choose a nickname" dialog shown before the chat window."""

    def __init__(self, master: tk.Misc, initial: str = "") -> None:
        self.result: Optional[str] = None
        self.top = tk.Toplevel(master)
        self.top.title("Nickname")
        ttk.Label(self.top, text="Please choose a nickname").pack(padx=12, pady=(12, 4))
        self.entry = ttk.Entry(self.top, width=24)
        self.entry.insert(0, initial)
        self.entry.pack(padx=12, pady=4)
        self.ok = ttk.Button(self.top, text="OK", command=self._accept)
        self.ok.pack(pady=(4, 12))
        self.entry.bind("<Return>", lambda _e: self._accept())
        self.top.protocol("WM_DELETE_WINDOW", self._cancel)
        self.entry.focus_set()

    def _accept(self) -> None:
        name = self.entry.get().strip()
        if name and " " not in name:
            self.result = name
            self.top.destroy()

    def _cancel(self) -> None:
        self.top.destroy()

    def wait(self) -> Optional[str]:
        """Blocks (running Tk's loop) until the dialog is closed; the name or None."""
        self.top.wait_window()
        return self.result


class MessengerWindow:
    """The chat window. ``factory(nickname)`` makes an unconnected relay
    client (``improto.RelayClient`` or anything with its methods)."""

    def __init__(self, root: tk.Misc, factory: ClientFactory, nickname: str, *,
                 download_dir: str = ".", rate_limit: float = 0) -> None:
        self.root = root
        self.factory = factory
        self.nickname = nickname
        self.download_dir = download_dir
        self.rate_limit = rate_limit
        self.dialogs: list["DownloadDialog"] = []
        self.client: Any = None
        self.online: list[str] = []
        self.files: list[Any] = []
        self._inbox: "queue.Queue[tuple[Callable[..., None], tuple]]" = queue.Queue()
        self._jobs: "queue.Queue[Optional[Callable[[], None]]]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self._reader_stop = threading.Event()
        self._closed = False
        self._build()
        self._worker = threading.Thread(target=self._work, name="messenger-worker", daemon=True)
        self._worker.start()
        self._poll_id = self.root.after(POLL_MS, self._poll)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        r = self.root
        r.title(f"Messenger - {self.nickname}")
        r.protocol("WM_DELETE_WINDOW", self.close)
        top = ttk.Frame(r, padding=6)
        top.pack(fill="x")
        ttk.Label(top, text=f"Nickname: {self.nickname}").pack(side="left")
        self.status = tk.StringVar(r, "not connected")
        ttk.Label(top, textvariable=self.status).pack(side="left", padx=12)
        self.logout_button = ttk.Button(top, text="Log out", command=self.logout, state="disabled")
        self.logout_button.pack(side="right")
        self.start_button = ttk.Button(top, text="Start", command=self.connect)
        self.start_button.pack(side="right", padx=4)

        middle = ttk.Frame(r, padding=(6, 0))
        middle.pack(fill="both", expand=True)
        self.transcript = tk.Text(middle, width=56, height=18, state="disabled", wrap="word")
        scroll = ttk.Scrollbar(middle, command=self.transcript.yview)
        self.transcript.configure(yscrollcommand=scroll.set)
        self.transcript.pack(side="left", fill="both", expand=True)
        scroll.pack(side="left", fill="y")
        side = ttk.Frame(middle, padding=(6, 0, 0, 0))
        side.pack(side="left", fill="y")
        ttk.Label(side, text="Online").pack(anchor="w")
        self.users = tk.Listbox(side, width=16, height=14, exportselection=False)
        self.users.pack(fill="y", expand=True)
        self.users.bind("<<ListboxSelect>>", self._picked_user)
        self.show_online_button = ttk.Button(side, text="Show online", command=self.show_online)
        self.show_online_button.pack(fill="x", pady=(4, 0))
        self.files_button = ttk.Button(side, text="Show server files", command=self.show_files)
        self.files_button.pack(fill="x", pady=(4, 0))
        self.download_button = ttk.Button(side, text="Download...", command=self.open_download)
        self.download_button.pack(fill="x", pady=(4, 0))

        bottom = ttk.Frame(r, padding=6)
        bottom.pack(fill="x")
        ttk.Label(bottom, text="To:").pack(side="left")
        self.to_entry = ttk.Entry(bottom, width=12)
        self.to_entry.pack(side="left", padx=(2, 6))
        ttk.Label(bottom, text="Message:").pack(side="left")
        self.message_entry = ttk.Entry(bottom, width=30)
        self.message_entry.pack(side="left", fill="x", expand=True, padx=(2, 6))
        self.message_entry.bind("<Return>", lambda _e: self.send_all())
        self.send_all_button = ttk.Button(bottom, text="Send all", command=self.send_all)
        self.send_all_button.pack(side="left")
        self.send_private_button = ttk.Button(bottom, text="Send private", command=self.send_private)
        self.send_private_button.pack(side="left", padx=(4, 0))
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        on = "normal" if connected else "disabled"
        for b in (self.send_all_button, self.send_private_button, self.show_online_button,
                  self.files_button, self.download_button, self.logout_button):
            b.configure(state=on)
        self.start_button.configure(state="disabled" if connected else "normal")

    # --------------------------------------------------------- transcript
    def say(self, line: str) -> None:
        self.transcript.configure(state="normal")
        self.transcript.insert("end", line + "\n")
        self.transcript.configure(state="disabled")
        self.transcript.see("end")

    def transcript_text(self) -> str:
        return self.transcript.get("1.0", "end-1c")

    def _set_users(self, users) -> None:
        self.online = sorted(set(users))
        selected = self._selected_user()
        self.users.delete(0, "end")
        for u in self.online:
            self.users.insert("end", u)
            if u == selected:
                self.users.selection_set("end")

    def _selected_user(self) -> Optional[str]:
        sel = self.users.curselection()
        return self.users.get(sel[0]) if sel else None

    def _picked_user(self, _event=None) -> None:
        user = self._selected_user()
        if user:
            self.to_entry.delete(0, "end")
            self.to_entry.insert(0, user)

    # ------------------------------------------------------------ threads
    def _post(self, fn: Callable[..., None], *args) -> None:
        """From any thread: run fn(*args) on the Tk thread."""
        self._inbox.put((fn, args))

    def _poll(self) -> None:
        while True:
            try:
                fn, args = self._inbox.get_nowait()
            except queue.Empty:
                break
            fn(*args)
        if not self._closed:
            self._poll_id = self.root.after(POLL_MS, self._poll)

    def _submit(self, call: Callable[[], Any], done: Callable[[Any], None],
                failed: Callable[[BaseException], None]) -> None:
        """Runs call() on the worker thread, then done(result) or failed(exc) on the Tk thread."""
        def job():
            try:
                result = call()
            except Exception as exc:  # reported in the window, never lost
                self._post(failed, exc)
            else:
                self._post(done, result)
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def _read(self, client: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                event = client.receive(timeout=0.25)
            except Exception as exc:
                if isinstance(exc, builtins_timeout):
                    continue
                if not stop.is_set():
                    self._post(self._lost, client, exc)
                return
            self._post(self._event, client, event)

    # ------------------------------------------------------------ actions
    def connect(self) -> None:
        """"Start": connects both sockets, subscribes to presence, loads the user list."""
        if self.client is not None:
            return
        self.start_button.configure(state="disabled")
        self.status.set("connecting...")
        client = self.factory(self.nickname)

        def call():
            client.connect()
            client.subscribe_presence()
            return client.list_users()

        def failed(exc):
            self.status.set("not connected")
            self.start_button.configure(state="normal")
            self.say(f"! cannot connect: {_describe_error(exc)}")
            try:
                client.close()
            except Exception:
                pass

        self._submit(call, lambda users: self._connected(client, users), failed)

    def _connected(self, client: Any, users) -> None:
        if self._closed:
            client.close()
            return
        self.client = client
        self._set_users(users)
        self._set_connected(True)
        self.status.set(f"connected as {self.nickname}")
        self.say(f"* connected as {self.nickname}; online: {', '.join(self.online)}")
        # Events wait in the receiving socket until read: starting the reader
        # only now applies every notice after the user list it follows.
        self._reader_stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(client, self._reader_stop),
                                        name="messenger-reader", daemon=True)
        self._reader.start()

    def _event(self, client: Any, event: Any) -> None:
        if client is not self.client:
            return  # from a session already logged out
        kind = type(event).__name__
        if kind == "Forward":
            self.say(f"{event.from_}: {_text(event.body)}")
        elif kind == "Joined":
            if event.user != self.nickname:
                self._set_users(self.online + [event.user])
            self.say(f"* {event.user} joined")
        elif kind == "Left":
            self._set_users([u for u in self.online if u != event.user])
            self.say(f"* {event.user} left")

    def _lost(self, client: Any, exc: BaseException) -> None:
        if client is not self.client:
            return
        self.say(f"! connection lost: {_describe_error(exc)}")
        self._disconnect()

    def _disconnect(self) -> None:
        client, self.client = self.client, None
        self._reader_stop.set()
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        self._reader = None
        self._set_users([])
        self._set_connected(False)
        self.status.set("not connected")

    def logout(self) -> None:
        """"Log out": closes both sockets (the others see this user leave)."""
        if self.client is None:
            return
        self._disconnect()
        self.say("* logged out")

    def _message(self) -> Optional[str]:
        text = self.message_entry.get()
        if not text.strip():
            return None
        self.message_entry.delete(0, "end")
        return text

    def send_all(self) -> None:
        """"Send all": the message box to every user (SEND ALL)."""
        text = self._message()
        if text is None or self.client is None:
            return
        client = self.client
        self._submit(lambda: client.send_all(text),
                     lambda _r: self.say(f"me -> ALL: {text}"),
                     lambda exc: self.say(f"! not delivered to ALL: {_describe_error(exc)}"))

    def send_private(self) -> None:
        """"Send private": the message box to the user in "To" (or picked in the list)."""
        to = self.to_entry.get().strip() or (self._selected_user() or "")
        if not to:
            self.say("! choose a user: type it in To or pick it in the list")
            return
        text = self._message()
        if text is None or self.client is None:
            return
        client = self.client
        self._submit(lambda: client.send(to, text),
                     lambda _r: self.say(f"me -> {to}: {text}"),
                     lambda exc: self.say(f"! not delivered to {to}: {_describe_error(exc)}"))

    def show_online(self) -> None:
        """"Show online": asks the server for the user list (LIST USERS)."""
        if self.client is None:
            return
        client = self.client

        def done(users):
            self._set_users(users)
            self.say(f"* online: {', '.join(self.online)}")

        self._submit(client.list_users, done,
                     lambda exc: self.say(f"! cannot list users: {_describe_error(exc)}"))

    def show_files(self) -> None:
        """"Show server files": the server's files with their sizes (LIST FILES)."""
        if self.client is None:
            return
        client = self.client

        def done(files):
            self.files = list(files)
            if not self.files:
                self.say("* the server has no files")
            for f in self.files:
                self.say(f"* file {f.name} ({f.size} bytes)")

        self._submit(client.list_files, done,
                     lambda exc: self.say(f"! cannot list files: {_describe_error(exc)}"))

    def open_download(self) -> Optional["DownloadDialog"]:
        """"Download...": the download window (the server's files, then the
        chosen one's progress)."""
        if self.client is None:
            return None
        dialog = DownloadDialog(self, self.client)
        self.dialogs.append(dialog)
        return dialog

    def close(self) -> None:
        """Logs out, stops the threads and destroys the window."""
        if self._closed:
            return
        self._closed = True
        self.root.after_cancel(self._poll_id)
        self._disconnect()
        for dialog in list(self.dialogs):
            dialog.close(join=True)
        self._jobs.put(None)
        self._worker.join(10)
        self.root.destroy()


class DownloadDialog:
    """The seed's download window: pick one of the server's files, then
    follow its download - a progress bar, bytes, rate and time left,
    "Stop" (pause) and "Continue" (resume), "Cancel", and when done the
    SHA-256 (checked against the server's) and the last byte.

    Client calls run on the window's worker thread; the download's progress
    arrives on its watcher thread and the outcome on a waiter thread, both
    posted to the Tk thread."""

    def __init__(self, window: MessengerWindow, client: Any) -> None:
        self.window = window
        self.client = client
        self.files: list[Any] = []
        self.download: Any = None
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._waiter: Optional[threading.Thread] = None
        self.closed = False
        self.top = tk.Toplevel(window.root)
        self.top.title(f"Download - {window.nickname}")
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        frame = ttk.Frame(self.top, padding=8)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text="Files on the server").pack(anchor="w")
        self.file_list = tk.Listbox(frame, width=48, height=8, exportselection=False)
        self.file_list.pack(fill="both", expand=True)
        self.file_list.bind("<Double-Button-1>", lambda _e: self.start())
        row = ttk.Frame(frame)
        row.pack(fill="x", pady=4)
        self.refresh_button = ttk.Button(row, text="Refresh", command=self.refresh)
        self.refresh_button.pack(side="left")
        self.download_button = ttk.Button(row, text="Download", command=self.start)
        self.download_button.pack(side="left", padx=4)
        ttk.Label(row, text="Save to:").pack(side="left", padx=(8, 2))
        self.dir_entry = ttk.Entry(row, width=24)
        self.dir_entry.insert(0, window.download_dir)
        self.dir_entry.pack(side="left", fill="x", expand=True)

        self.progress_bar = ttk.Progressbar(frame, orient="horizontal", length=360, maximum=100.0,
                                            mode="determinate")
        self.progress_bar.pack(fill="x", pady=(6, 2))
        self.progress_text = tk.StringVar(self.top, "")
        ttk.Label(frame, textvariable=self.progress_text).pack(anchor="w")
        buttons = ttk.Frame(frame)
        buttons.pack(fill="x", pady=4)
        self.stop_button = ttk.Button(buttons, text="Stop", command=self.pause)
        self.stop_button.pack(side="left")
        self.continue_button = ttk.Button(buttons, text="Continue", command=self.resume)
        self.continue_button.pack(side="left", padx=4)
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.cancel_button.pack(side="left")
        self.status = tk.StringVar(self.top, "")
        ttk.Label(frame, textvariable=self.status, wraplength=420, justify="left").pack(anchor="w", pady=(4, 0))
        self._buttons(running=False, paused=False)
        self.refresh()

    def _buttons(self, running: bool, paused: bool) -> None:
        def state(on: bool) -> str:
            return "normal" if on else "disabled"
        self.stop_button.configure(state=state(running and not paused))
        self.continue_button.configure(state=state(running and paused))
        self.cancel_button.configure(state=state(running))
        self.download_button.configure(state=state(not running))

    def refresh(self) -> None:
        """Lists the server's files (LIST FILES)."""
        def done(files):
            if self.closed:
                return
            self.files = list(files)
            self.file_list.delete(0, "end")
            for f in self.files:
                self.file_list.insert("end", f"{f.name}  ({human_bytes(f.size)})")
            if not self.files:
                self.status.set("The server has no files.")

        self.window._submit(self.client.list_files, done,
                            lambda exc: self.closed or self.status.set(
                                f"Cannot list files: {_describe_error(exc)}"))

    def selected(self) -> Optional[str]:
        sel = self.file_list.curselection()
        return self.files[sel[0]].name if sel else None

    def start(self) -> None:
        """"Download": downloads the selected file into "Save to"."""
        if self.download is not None:
            return
        name = self.selected()
        if name is None:
            self.status.set("Pick a file in the list first.")
            return
        directory = self.dir_entry.get().strip() or "."
        client, post = self.client, self.window._post
        self._buttons(running=True, paused=False)
        self.download_button.configure(state="disabled")
        self.result = self.error = None
        self.progress_bar["value"] = 0
        self.status.set(f"Asking the server for {name}...")

        def call():
            return client.download(name, directory, lambda p: post(self._progress, p),
                                   rate_limit=self.window.rate_limit)

        def failed(exc):
            if self.closed:
                return
            self._buttons(running=False, paused=False)
            self.error = exc
            self.status.set(f"Download of {name} failed: {_describe_error(exc)}")
            self.window.say(f"! download of {name} failed: {_describe_error(exc)}")

        self.window._submit(call, self._started, failed)

    def _started(self, download: Any) -> None:
        if self.closed:
            # Nobody is watching it any more.
            self.window._submit(download.cancel, lambda _r: None, lambda _e: None)
            return
        self.download = download
        resumed = f", resuming at {human_bytes(download.offset)}" if download.offset else ""
        self.status.set(f"Downloading {download.file} ({human_bytes(download.size)}{resumed})")
        self.window.say(f"* download {download.id} of {download.file} started{resumed}")
        self._waiter = threading.Thread(target=self._wait, args=(download,),
                                        name="messenger-download", daemon=True)
        self._waiter.start()

    def _wait(self, download: Any) -> None:
        try:
            result = download.result()
        except Exception as exc:  # reported in the window
            self.window._post(self._ended, download, None, exc)
        else:
            self.window._post(self._ended, download, result, None)

    def _progress(self, p: Any) -> None:
        if self.closed or (self.download is not None and p.id != self.download.id):
            return
        self.progress_bar["value"] = p.percent
        rate = f", {human_bytes(p.rate)}/s" if p.rate > 0 else ""
        eta = f", {p.eta:.0f} s left" if p.eta else ""
        paused = " - stopped" if p.paused else ""
        self.progress_text.set(f"{human_bytes(p.bytes)} of {human_bytes(p.total)} "
                               f"({p.percent:.0f}%){rate}{eta}{paused}")

    def _ended(self, download: Any, result: Any, exc: Optional[BaseException]) -> None:
        if self.closed or download is not self.download:
            return
        self.download = None
        self._buttons(running=False, paused=False)
        if exc is not None:
            self.error = exc
            self.status.set(f"Download of {download.file} ended: {_describe_error(exc)}")
            self.window.say(f"! download of {download.file} ended: {_describe_error(exc)}")
            return
        self.result = result
        self.progress_bar["value"] = 100.0
        last = ("empty file" if result.last_offset is None
                else f"last byte at offset {result.last_offset} (0x{result.last_byte:02x})")
        self.status.set(f"Done: {result.path}, {result.size} bytes\nSHA-256 {result.sha256} "
                        f"(matches the server's)\n{last}")
        self.window.say(f"* downloaded {result.file}: {result.size} bytes, sha256 {result.sha256}, {last}")

    def _control(self, what: str, call: Callable[[], None], paused: Optional[bool]) -> None:
        download = self.download
        if download is None:
            return

        def done(_r):
            if not self.closed and self.download is download and paused is not None:
                self._buttons(running=True, paused=paused)
                self.status.set(f"Download of {download.file}: "
                                f"{'stopped' if paused else 'continued'}.")

        def failed(exc):
            if not self.closed:
                self.status.set(f"Cannot {what} {download.file}: {_describe_error(exc)}")

        self.window._submit(call, done, failed)

    def pause(self) -> None:
        """"Stop": pauses the download (PAUSE); "Continue" goes on."""
        if self.download is not None:
            self.stop_button.configure(state="disabled")
            self._control("stop", self.download.pause, paused=True)

    def resume(self) -> None:
        """"Continue": resumes a stopped download (RESUME)."""
        if self.download is not None:
            self.continue_button.configure(state="disabled")
            self._control("continue", self.download.resume, paused=False)

    def cancel(self) -> None:
        """"Cancel": stops the download for good and removes its part file."""
        if self.download is not None:
            self._buttons(running=False, paused=False)
            self.download_button.configure(state="disabled")
            self._control("cancel", self.download.cancel, paused=None)

    def close(self, join: bool = False) -> None:
        """Closes the window; a running download goes on until the client
        logs out. join: wait for the download's thread (the client is closed,
        so it ends at once)."""
        self.closed = True
        if self in self.window.dialogs:
            self.window.dialogs.remove(self)
        waiter = self._waiter
        if waiter is not None and (join or self.download is None):
            waiter.join(10)
        try:
            self.top.destroy()
        except tk.TclError:
            pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The seed-001 chat window over a relay server.")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50000)
    parser.add_argument("--name", help="nickname (asked for when not given)")
    parser.add_argument("--downloads", default=".", metavar="DIR",
                        help="where downloads are saved (default: the current directory)")
    parser.add_argument("--limit-rate", type=float, default=0, metavar="BYTES_PER_S",
                        help="download at most this fast (default: as fast as the link goes)")
    args = parser.parse_args(argv)
    if improto is None:
        parser.error("the improto package is not installed (see the README, section Python)")
    root = tk.Tk()
    name = args.name
    if not name:
        root.withdraw()
        name = NicknamePrompt(root).wait()
        if not name:
            root.destroy()
            return 1
        root.deiconify()
    if not os.path.isdir(args.downloads):
        parser.error(f"--downloads: {args.downloads} is not a directory")
    MessengerWindow(root, lambda nick: improto.RelayClient(nick, args.host, args.port), name,
                    download_dir=args.downloads, rate_limit=args.limit_rate)
    root.mainloop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
