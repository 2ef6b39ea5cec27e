"""Reader of tests/vectors/<protocol>/*.vec (format: tests/support/vectors.hpp)
and the replay machinery the codec tests share with the C++ vector tests:
each case decoded whole, byte by byte and at every two-way split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List

import improto

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@dataclass
class Case:
    where: str  # file:line
    name: str
    decoder: str = ""
    input: bytes = b""
    eof: bool = False
    expected: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where} {self.name!r}"


_ESCAPES = {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0"}


def unescape(text: str) -> bytes:
    """wire::unescape: printable text with \\\\ \\" \\n \\r \\t \\0 and \\xNN escapes."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        if i + 1 == len(text):
            raise ValueError("escape at end of text")
        e = text[i + 1]
        if e == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif e in _ESCAPES:
            out += _ESCAPES[e]
            i += 2
        else:
            raise ValueError(f"unknown escape \\{e}")
    return bytes(out)


def load(protocol: str) -> List[Case]:
    """Every case of tests/vectors/<protocol>/*.vec, files in name order."""
    cases: List[Case] = []
    files = sorted(p for p in (VECTORS / protocol).iterdir() if p.suffix == ".vec")
    for path in files:
        current = None
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            line = line.rstrip("\r")
            if not line or line.startswith("#"):
                continue
            where = f"{path.name}:{number}"
            if line.startswith("=== "):
                current = Case(where, line[4:])
                cases.append(current)
                continue
            assert current is not None, f"{where}: text before the first '=== name'"
            key, sep, value = line.partition(": ")
            if not sep:
                key, value = line, ""
            if key in ("in", "in:"):
                current.input += unescape(value)
            elif key == "decoder":
                current.decoder = value
            elif key == "eof":
                current.eof = value == "yes"
            elif key == "out":
                current.expected.append(value)
            else:
                raise AssertionError(f"{where}: unknown key {key!r}")
    assert cases, f"no vectors in {VECTORS / protocol}"
    return cases


def error_line(e: improto.ProtocolError) -> str:
    return f"error {e.errc}"


class StreamAdapter:
    """Feeds chunks to a decoder and collects describe() lines and error lines,
    going on after a non-sticky error as the C++ adapter does. `reencode`
    (message -> bytes) adds a round-trip check through a fresh decoder."""

    def __init__(self, make: Callable[[], object], reencode: Callable[[object], bytes] = None):
        self.make = make
        self.decoder = make()
        self.reencode = reencode
        self.out: List[str] = []
        self.stopped = False

    def _emit(self, messages) -> None:
        for m in messages:
            text = repr(m)
            assert improto_describe(m) == text
            if self.reencode is not None:
                text += self._round_trip(m, text)
            self.out.append(text)

    def _round_trip(self, m, text: str) -> str:
        try:
            data = self.reencode(m)
        except improto.ProtocolError as e:
            return f"  <serialize refused: {e}>"
        fresh = self.make()
        try:
            again = fresh.feed(data) or fresh.finish()
            round_text = repr(again[0]) if again else "<nothing>"
        except improto.ProtocolError as e:
            round_text = error_line(e)
        return "" if round_text == text else f"  <round trip gave: {round_text}>"

    def _call(self, method, *args) -> None:
        while not self.stopped:
            try:
                self._emit(method(*args))
                return
            except improto.ProtocolError as e:
                self._emit(e.messages)
                self.out.append(error_line(e))
                if self.decoder.failed:
                    self.stopped = True
                    return
                args = (b"",) if args else ()  # resume after the bad message

    def feed(self, chunk: bytes) -> None:
        self._call(self.decoder.feed, chunk)

    def finish(self) -> None:
        self._call(self.decoder.finish)


def improto_describe(m) -> str:
    module = type(m).__module__
    return __import__(module, fromlist=["describe"]).describe(m)


def run_stream(make, reencode, chunks, eof: bool) -> List[str]:
    a = StreamAdapter(make, reencode)
    for c in chunks:
        a.feed(c)
    if eof:
        a.finish()
    return a.out


def check_stream_case(case: Case, make, reencode=None) -> None:
    """Whole, byte by byte and every two-way split must give case.expected."""
    data = case.input
    whole = run_stream(make, reencode, [data], case.eof)
    assert whole == case.expected, f"{case}: whole input"
    one_by_one = run_stream(make, reencode, [data[i:i + 1] for i in range(len(data))], case.eof)
    assert one_by_one == case.expected, f"{case}: byte by byte"
    for split in range(1, len(data)):
        parts = run_stream(make, reencode, [data[:split], data[split:]], case.eof)
        assert parts == case.expected, f"{case}: split at {split}"


def check_datagram_case(case: Case, parse, reencode=None) -> None:
    """A whole-input parser: one describe() line or one error line."""
    try:
        m = parse(case.input)
    except improto.ProtocolError as e:
        got = [error_line(e)]
    else:
        text = repr(m)
        if reencode is not None:
            try:
                again = parse(reencode(m))
                round_text = repr(again)
            except improto.ProtocolError as e:
                round_text = error_line(e)
            if round_text != text:
                text += f"  <round trip gave: {round_text}>"
        got = [text]
    assert got == case.expected, f"{case}"
