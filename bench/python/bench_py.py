#!/usr/bin/env python3
"""The Python suite's measurements (bench/python/suite.sh runs it with the
improto package installed). Prints one JSON row a line on stdout.

    bench_py.py decode ROUNDS MS        registry requests: improto vs h11 vs httptools;
                                        relay SEND decode
    bench_py.py relay HOST:PORT SECONDS asyncio round trips, 100 clients

Decode: each round times every parser for MS milliseconds on the same bytes,
alternating; the rows give medians and the median of per-round ratios.
Every parser does the work a server needs: the request line, every header
and the body of each request, as Python objects.
"""

import asyncio
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bench  # noqa: E402
import improto
import improto.registry


# ----------------------------------------------------------------- the bytes
def seed_post(body: str) -> bytes:
    return ("POST /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/*\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def browser_get() -> bytes:
    head = ("GET /userlist.txt HTTP/1.1\r\n"
            "Host: 127.0.0.1:8080\r\n"
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
            "Accept-Language: en-US,en;q=0.5\r\n"
            "Accept-Encoding: gzip, deflate, br\r\n"
            "Connection: keep-alive\r\n"
            "Upgrade-Insecure-Requests: 1\r\n"
            "Sec-Fetch-Dest: document\r\n"
            "Sec-Fetch-Mode: navigate\r\n"
            "Sec-Fetch-Site: none\r\n"
            "Sec-Fetch-User: ?1\r\n")
    cookie = "Cookie: session=" + "0123456789abcdef" * 4 + "\r\n"
    pad = "X-Pad: " + "p" * max(0, 520 - len(head) - len(cookie) - 4 - 9) + "\r\n"
    return (head + cookie + pad + "\r\n").encode()


def curl_get() -> bytes:
    return (b"GET /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\n"
            b"Accept: */*\r\n\r\n")


def cases():
    """(name, bytes, requests in it) - the cases of bench/parser."""
    stream = b""
    for i in range(1000):
        name = f"user{i}"
        stream += (seed_post(f"REGISTER {name}@127.0.0.1:{40000 + i}"), curl_get(),
                   seed_post(f"LOGOUT {name}@127.0.0.1:{40000 + i}"), browser_get())[i % 4]
    return [("seed-post", seed_post("REGISTER alice@127.0.0.1:40000"), 1),
            ("browser-get", browser_get(), 1),
            ("pipelined-1000", stream, 1000)]


# ------------------------------------------------------------------- parsers
def ours(data: bytes, n: int):
    """One decoder per connection, as a server keeps it; feed returns the messages."""
    decoder = improto.registry.RequestDecoder()
    def run():
        got = decoder.feed(data)
        assert len(got) == n
    return run


def h11_parser(data: bytes, n: int):
    import h11
    # h11 moves to the next request only once the server has answered the
    # last: a fresh connection per buffer, and the minimal answer between
    # pipelined requests (the work any h11 server does).
    def run():
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        done = 0
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                break
            if type(ev) is h11.EndOfMessage:
                done += 1
                if done == n:
                    break
                conn.send(h11.Response(status_code=204, headers=[]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
        assert done == n
    return run


def httptools_parser(data: bytes, n: int):
    import httptools

    class Request:
        __slots__ = ("url", "headers", "body", "done")

        def __init__(self):
            self.url, self.headers, self.body, self.done = b"", [], b"", 0

        def on_message_begin(self):
            self.url, self.headers, self.body = b"", [], b""

        def on_url(self, url):
            self.url += url

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_body(self, body):
            self.body += body

        def on_message_complete(self):
            self.done += 1

    sink = Request()
    parser = httptools.HttpRequestParser(sink)  # keep-alive: one parser per connection
    def run():
        sink.done = 0
        parser.feed_data(data)
        assert sink.done == n
    return run


def timed(fn, ms: float) -> float:
    """Calls fn for about ms milliseconds; calls per second."""
    fn()  # warm
    calls, start = 0, time.perf_counter()
    end = start + ms / 1000
    while True:
        for _ in range(8):
            fn()
        calls += 8
        now = time.perf_counter()
        if now >= end:
            return calls / (now - start)


def decode(rounds: int, ms: float):
    import h11  # noqa: F401 - a missing anchor fails here, before any timing
    import httptools  # noqa: F401
    for name, data, n in cases():
        parsers = {"improto": ours(data, n), "h11": h11_parser(data, n),
                   "httptools": httptools_parser(data, n)}
        per = {k: [] for k in parsers}
        goals = (("h11", 10.0), ("httptools", 1.0))
        r = 0
        # More rounds (up to BENCH_ROUNDS_MAX) while a row's spread crosses its goal.
        while r < rounds or bench.more_rounds(r, [([o / a for o, a in zip(per["improto"], per[k])], g)
                                                  for k, g in goals]):
            for k, fn in parsers.items():
                per[k].append(timed(fn, ms) * n)
            r += 1
        for anchor, goal in goals:
            bench.rounds_row(f"python registry request decode {name}", "requests/s",
                             per["improto"], f"{anchor} {version(anchor)}", per[anchor], goal, True,
                             "h11 answers each pipelined request before the next (it cannot go on "
                             "otherwise)" if anchor == "h11" and n > 1 else "")
        print(f"[python] {name}: " + ", ".join(f"{k} {statistics.median(v):,.0f}/s" for k, v in per.items()),
              file=sys.stderr, flush=True)

    # Relay: 1000 SENDs of 20..200 bytes through the server-side decoder.
    import improto.relay as relay
    rng = random.Random(7)
    sends = [relay.Send(to=f"user{rng.randrange(100)}", body=bytes(rng.randrange(20, 200)))
             for _ in range(1000)]
    stream = b"".join(relay.encode(m) for m in sends)
    decoder = relay.Decoder(direction=relay.Direction.TO_SERVER)

    def run():
        assert len(decoder.feed(stream)) == 1000
    per = [timed(run, ms) * 1000 for _ in range(rounds)]
    bench.ratio_row("python relay SEND decode (1000 pipelined, 20-200 B bodies)", "messages/s",
                    statistics.median(per), "", None, [], None, rounds=rounds)


def version(module: str) -> str:
    return getattr(__import__(module), "__version__", "")


# ------------------------------------------------------- asyncio round trips
async def relay_round_trips(host: str, port: int, seconds: float, clients: int = 100):
    from improto import aio
    names = [f"bench{i}" for i in range(clients)]
    conns = [await aio.RelayClient.connect(n, host, port) for n in names]
    received = 0

    async def drain(c):
        nonlocal received
        async for _ev in c.events():
            received += 1

    drains = [asyncio.create_task(drain(c)) for c in conns]
    stop_at = time.monotonic() + seconds
    done = 0

    async def sender(i, c):
        nonlocal done
        rng = random.Random(i)
        while time.monotonic() < stop_at:
            to = names[(i + 1 + rng.randrange(clients - 1)) % clients]
            await c.send(to, b"ping from bench")  # returns on SENT: one round trip
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(sender(i, c) for i, c in enumerate(conns)))
    elapsed = time.monotonic() - start
    for c in conns:
        await c.close()
    for t in drains:
        t.cancel()
    await asyncio.gather(*drains, return_exceptions=True)
    return done / elapsed, received


def main():
    if sys.argv[1] == "decode":
        decode(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "relay":
        host, port = sys.argv[2].rsplit(":", 1)
        rate, received = asyncio.run(relay_round_trips(host, int(port), float(sys.argv[3])))
        bench.ratio_row("python asyncio relay SEND->SENT, 100 clients in one loop", "round trips/s",
                        rate, "", None, [], None, note=f"imrelayd (C++); {received} FORWARDs received")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
