#!/usr/bin/env python3
"""Downloads a file from a relay server's file service (imrelayd --files),
with improto.aio: lists the server's files, downloads one with progress
lines, and prints the checked result.

    python3 fetch.py [--host HOST] [--port PORT] [--name NAME] [--limit-rate B/S] FILE [DIR]

A NAME.part left in DIR by an interrupted download (this script's or
imrelay's) is resumed. The last line is imrelay's:

    downloaded FILE: SIZE bytes, sha256 HEX, last byte at offset N (0xNN) -> PATH
"""

import argparse
import asyncio
import sys
import time

import improto
import improto.aio


def result_line(r: improto.DownloadResult) -> str:
    last = ("empty file, no last byte" if r.last_offset is None
            else f"last byte at offset {r.last_offset} (0x{r.last_byte:02x})")
    return f"downloaded {r.file}: {r.size} bytes, sha256 {r.sha256}, {last} -> {r.path}"


async def fetch(host: str, port: int, name: str, file: str, directory: str,
                rate_limit: float = 0, out=sys.stdout) -> improto.DownloadResult:
    client = await improto.aio.RelayClient.connect(name, host, port)
    try:
        for f in await client.list_files():
            print(f"file: {f.name} ({f.size} bytes)", file=out, flush=True)
        shown = [0.0]

        def progress(p: improto.DownloadProgress) -> None:
            # Runs on the event loop; at most one line a second, and the last.
            now = time.monotonic()
            if now - shown[0] >= 1.0 or p.bytes == p.total:
                shown[0] = now
                eta = f", {p.eta:.0f} s left" if p.eta else ""
                print(f"progress: {p.file} {p.percent:.0f}% {p.bytes}/{p.total} bytes, "
                      f"{p.rate / 1e6:.1f} MB/s{eta}", file=out, flush=True)

        download = await client.download(file, directory, progress, rate_limit=rate_limit)
        resumed = f", resuming at offset {download.offset}" if download.offset else ""
        print(f"download {download.id} {file}: {download.size} bytes{resumed}", file=out, flush=True)
        result = await download
        print(result_line(result), file=out, flush=True)
        return result
    finally:
        await client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Download a file from a relay server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("file")
    parser.add_argument("dir", nargs="?", default=".")
    parser.add_argument("--port", type=int, default=50000)
    parser.add_argument("--name", default="fetch")
    parser.add_argument("--limit-rate", type=float, default=0, metavar="BYTES_PER_S")
    args = parser.parse_args(argv)
    try:
        asyncio.run(fetch(args.host, args.port, args.name, args.file, args.dir, args.limit_rate))
    except improto.Error as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
