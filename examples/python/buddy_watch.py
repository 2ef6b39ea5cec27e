#!/usr/bin/env python3
"""Prints a user's buddies' status changes (protocol 2, seed 002).

    python3 buddy_watch.py USER [HOST] [--tcp-port 1234] [--udp-port 1235] [--interval 2]

Polls the buddy server with GET (UDP; the client retries lost datagrams)
every --interval seconds and prints one line per change: a buddy coming
online (with the address it chats on), going offline, appearing in or
leaving the list. Ctrl-C stops it; --rounds N stops after N polls.
"""

import argparse
import sys
import time

import improto


def state(entry) -> str:
    """ "online 127.0.0.1:4000" or "offline" for one buddy entry."""
    status = entry.status
    name = getattr(status, "name", str(status)).lower()
    online = "online" in name and "offline" not in name or getattr(status, "value", None) == 100
    return f"online {entry.ip}:{entry.port}" if online else "offline"


def changes(before: dict, after: dict) -> list:
    """The lines that describe going from one {buddy: state} to the next."""
    lines = []
    for buddy in sorted(after.keys() | before.keys()):
        old, new = before.get(buddy), after.get(buddy)
        if old == new:
            continue
        if new is None:
            lines.append(f"{buddy}: no longer a buddy")
        elif old is None:
            lines.append(f"{buddy}: {new}")
        else:
            lines.append(f"{buddy}: {old} -> {new}")
    return lines


def watch(client, user, interval=2.0, rounds=None, out=sys.stdout) -> None:
    seen: dict = {}
    n = 0
    while rounds is None or n < rounds:
        if n:
            time.sleep(interval)
        current = {e.user: state(e) for e in client.get(user)}
        for line in changes(seen, current):
            print(line, file=out, flush=True)
        seen = current
        n += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Prints buddies' status changes.")
    parser.add_argument("user")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("--tcp-port", type=int, default=1234)
    parser.add_argument("--udp-port", type=int, default=1235)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, help="stop after this many polls")
    args = parser.parse_args(argv)
    try:
        with improto.BuddyClient(args.host, tcp_port=args.tcp_port, udp_port=args.udp_port) as client:
            watch(client, args.user, args.interval, args.rounds)
    except KeyboardInterrupt:
        pass
    except improto.Error as exc:
        print(f"buddy_watch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
