#!/usr/bin/python3
"""Where a download's time goes (docs/performance.md, transfer section).

    BENCH_BIN=build-bench/bin python3 bench/transfer/profile.py [loopback|veth|veth1] [MiB]

Runs one download of ours (imrelayd --files + imrelay /get) on the path, as
suite.py does, with `perf record` (cpu-clock) on the server and the client,
then prints each side's top functions and its system-call counts (strace -c
of a second download). Needs linux-perf and strace.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402


def top(data, comm, n=22):
    r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--comm", comm, "--sort",
                        "dso,symbol", "--stdio", "-g", "none"], capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if "%" in l and not l.startswith("#")]
    return "\n".join(l[:150] for l in lines[:n])


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "loopback"
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    tmp, served, out, size, sha, link = suite.scratch_download(path, mib, "transfer-profile")
    suite.TMP = tmp
    try:
        server = suite.Side(link, "a", suite.SERVER_CPU)
        client = suite.Side(link, "b", suite.CLIENT_CPU)
        host = link.addr("a") if link else "127.0.0.1"
        ours = suite.Ours(server, client, host, served, out, size, sha)
        try:
            perfs = []
            # The whole core each side is pinned to (`-p PID` recorded nothing
            # through the namespace and setsid chain), its softirqs included;
            # the report keeps the side's own process.
            for name, side in (("server", server), ("client", client)):
                perfs.append((name, subprocess.Popen(
                    ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-a", "-C",
                     str(side.cpu), "-o", str(tmp / f"{name}.data")], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)))
            time.sleep(1)  # perf -a reads the kernel's symbols first; a download can be shorter
            got = ours.once(600)
            for _, p in perfs:
                p.send_signal(signal.SIGINT)
                p.wait(60)
            print(f"== {path}, {mib} MiB: {mib / got['seconds']:.1f} MiB/s, CPU s/GiB server "
                  f"{got['server_cpu'] * suite.GiB / size:.2f}, client "
                  f"{got['client_cpu'] * suite.GiB / size:.2f}")
            for name, _ in perfs:
                comm = "imrelayd" if name == "server" else "imrelay"
                print(f"--- {name}: {comm} on its core, by binary and function")
                print(top(str(tmp / f"{name}.data"), comm))
            straces = []
            for name, d in (("server", ours.srv), ("client", ours.cli)):
                straces.append(subprocess.Popen(
                    ["strace", "-c", "-f", "-p", str(d.p.pid), "-o", str(tmp / f"{name}.strace")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ours.once(600)
            for _, p in zip(range(2), straces):
                p.send_signal(signal.SIGINT)
                p.wait(60)
            for name in ("server", "client"):
                print(f"--- {name}: system calls of one download (strace -c)")
                text = (tmp / f"{name}.strace").read_text().splitlines()
                print("\n".join(text[:12]))
        finally:
            ours.stop()
    finally:
        if link:
            link.down()
        subprocess.run(["rm", "-rf", str(tmp), str(out)])


if __name__ == "__main__":
    main()
