#!/usr/bin/env python3
"""A relay bot that answers every message it receives.

    python3 echo_bot.py [HOST] [--port PORT] [--name NAME] [--count N]

It registers as NAME (default "echo") on the relay server, then answers
each FORWARD with "echo: <the message>" to its sender. With --count it
stops after N answers (for scripts); otherwise it runs until Ctrl-C.
"""

import argparse
import sys

import improto


def serve(client, count=None, out=sys.stdout) -> int:
    """Answers messages on an open RelayClient; returns how many it answered."""
    answered = 0
    for event in client.events():
        if type(event).__name__ != "Forward":
            continue  # presence notices: this bot does not subscribe, but ignore them anyway
        text = event.body.decode("utf-8", "replace")
        try:
            client.send(event.from_, "echo: " + text)
            print(f"answered {event.from_}: {text}", file=out, flush=True)
        except improto.ProtocolError as exc:  # the sender left meanwhile
            print(f"could not answer {event.from_}: {exc}", file=out, flush=True)
        answered += 1
        if count is not None and answered >= count:
            break
    return answered


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Relay bot answering every message.")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50000)
    parser.add_argument("--name", default="echo")
    parser.add_argument("--count", type=int, help="stop after this many answers")
    args = parser.parse_args(argv)
    try:
        with improto.RelayClient(args.name, args.host, args.port) as client:
            print(f"{args.name} is online at {args.host}:{args.port}", flush=True)
            serve(client, args.count)
    except KeyboardInterrupt:
        pass
    except improto.Error as exc:
        print(f"echo_bot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
