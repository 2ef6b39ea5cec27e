#!/usr/bin/env python3
"""Build libFuzzer seed corpora from the test vectors.

For each target fuzz_<protocol>, every vector in tests/vectors/<protocol>/*.vec
becomes one file in OUT_DIR/fuzz_<protocol>/ holding the vector's input: its
`in:` lines unescaped and concatenated (format: tests/support/vectors.hpp).
A server target fuzz_<protocol>_server is seeded from the same vectors.
Inputs that once broke a target, tests/fuzz/regressions/<target>/*, are
copied in as well (smoke.sh and campaign.sh also replay them first).

    seed_corpus.py OUT_DIR                 # every protocol with vectors
    seed_corpus.py OUT_DIR fuzz_buddy ...  # only these targets

A target without vectors gets an empty directory (libFuzzer then starts from
nothing) and a warning. Exit status 2 on usage errors, 1 on a bad vector file.
"""

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "vectors"
REGRESSIONS = HERE / "regressions"

SIMPLE_ESCAPES = {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0"}


class VectorError(Exception):
    pass


def unescape(text: str) -> bytes:
    """Inverse of wire::escape, exactly as wire::unescape reads it."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        i += 1
        if i == len(text):
            raise VectorError("escape at end of text")
        e = text[i]
        if e in SIMPLE_ESCAPES:
            out += SIMPLE_ESCAPES[e]
            i += 1
        elif e == "x":
            digits = text[i + 1:i + 3]
            if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise VectorError("bad \\x escape")
            out.append(int(digits, 16))
            i += 3
        else:
            raise VectorError(f"unknown escape \\{e}")
    return bytes(out)


def vector_inputs(path: pathlib.Path):
    """Yields (name, input bytes) for each vector of one .vec file."""
    name = None
    data = b""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            # Raw bytes pass through unchanged, as in the C++ reader.
            line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
            if line.endswith("\r"):
                line = line[:-1]
            if not line or line.startswith("#"):
                continue
            if line.startswith("=== "):
                if name is not None:
                    yield name, data
                name, data = line[4:], b""
                continue
            if name is None:
                raise VectorError(f"{path.name}:{number}: text before the first '=== name'")
            key, sep, value = line.partition(": ")
            if key in ("in", "in:"):
                try:
                    data += unescape(value if sep else "")
                except VectorError as e:
                    raise VectorError(f"{path.name}:{number}: {e}") from None
    if name is not None:
        yield name, data


# Targets that build messages from the fuzz bytes rather than decode them:
# wire bytes would be no better a start than nothing.
BUILDS_ITS_OWN_MESSAGES = {"fuzz_roundtrip"}


def seed(target: str, vectors: pathlib.Path, out: pathlib.Path) -> int:
    protocol = target[len("fuzz_"):].removesuffix("_server")
    corpus = out / target
    corpus.mkdir(parents=True, exist_ok=True)
    files = sorted((vectors / protocol).glob("*.vec"))
    if not files and target in BUILDS_ITS_OWN_MESSAGES:
        return 0
    if not files:
        print(f"seed_corpus: warning: no vectors in {vectors / protocol} for {target}",
              file=sys.stderr)
    count = 0
    for path in files:
        for index, (_, data) in enumerate(vector_inputs(path), start=1):
            (corpus / f"{path.stem}-{index:03d}").write_bytes(data)
            count += 1
    if (REGRESSIONS / target).is_dir():
        for path in sorted((REGRESSIONS / target).iterdir()):
            if path.is_file():
                (corpus / f"regression-{path.name}").write_bytes(path.read_bytes())
                count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path, help="directory to create corpora in")
    parser.add_argument("targets", nargs="*", help="fuzz_<protocol> names (default: all)")
    parser.add_argument("--vectors", type=pathlib.Path, default=VECTORS,
                        help=f"vector root (default {VECTORS})")
    args = parser.parse_args()

    targets = args.targets or sorted(
        "fuzz_" + d.name for d in args.vectors.iterdir() if d.is_dir() and any(d.glob("*.vec")))
    for t in targets:
        if not t.startswith("fuzz_") or len(t) == len("fuzz_") or "/" in t:
            parser.error(f"target names look like fuzz_<protocol>, got {t!r}")
    try:
        for t in targets:
            n = seed(t, args.vectors, args.out)
            print(f"{t}: {n} seed inputs in {args.out / t}")
    except VectorError as e:
        print(f"seed_corpus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
