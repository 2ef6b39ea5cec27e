#!/usr/bin/python3
"""A/B of two builds of ours on one path, with TCP in the same rounds.

    python3 bench/transfer/ab.py OLD_BIN NEW_BIN [veth|veth1|loopback] [MiB] [rounds]

Each round downloads the file with the old build, the new one and
tcp_file, the order alternating from round to round (as suite.py does), so
both builds see the same minutes of a shared machine. Prints every round and
then, per contender, the median and spread of goodput and of each side's
CPU s/GiB. Needs what suite.py needs (root for the veth).
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402


def steal_ticks():
    """Ticks (USER_HZ) each CPU lost to the hypervisor so far: a slow round
    with much steal is the host's, not ours."""
    out = {}
    for line in open("/proc/stat"):
        f = line.split()
        if f[0].startswith("cpu") and f[0] != "cpu":
            out[f[0]] = int(f[8])
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    old, new = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    path = sys.argv[3] if len(sys.argv) > 3 else "veth"
    mib = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    tmp, served, out, size, sha, link = suite.scratch_download(path, mib, "transfer-ab")
    contenders = []
    results = {}
    try:
        server = suite.Side(link, "a", suite.SERVER_CPU)
        client = suite.Side(link, "b", suite.CLIENT_CPU)
        host = link.addr("a") if link else "127.0.0.1"
        for name, binary, cls in (("old", old, suite.Ours), ("new", new, suite.Ours),
                                  ("tcp", new, suite.Tcp)):
            suite.BIN = binary
            suite.TMP = tmp / name  # each its own logs
            suite.TMP.mkdir()
            c = cls(server, client, host, served, out, size, sha)
            c.name = name
            contenders.append(c)
        for r in range(rounds):
            for c in suite.bench.alternate(r, contenders):
                st0 = steal_ticks()
                got = c.once(timeout=max(120, size / (2 * suite.MiB)))
                st1 = steal_ticks()
                row = (mib / got["seconds"], got["server_cpu"] * suite.GiB / size,
                       got["client_cpu"] * suite.GiB / size)
                results.setdefault(c.name, []).append(row)
                print(f"round {r + 1} {c.name}: {row[0]:.1f} MiB/s, CPU s/GiB server {row[1]:.2f} "
                      f"client {row[2]:.2f}, steal ticks "
                      + "/".join(str(st1[k] - st0[k]) for k in sorted(st1)), flush=True)
                if c.name != "tcp":  # the sender's counters, if the build logs them
                    ends = [l for l in c.srv.log_path.read_text().splitlines() if ": complete" in l]
                    if ends and "(" in ends[-1]:
                        print("   server: " + ends[-1][ends[-1].index("("):], flush=True)
        print(f"== {path}, {mib} MiB, {rounds} rounds: median (min-max)")
        for name, rows in results.items():
            cols = []
            for i, label in enumerate(("MiB/s", "server s/GiB", "client s/GiB")):
                v = [x[i] for x in rows]
                cols.append(f"{label} {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")
            print(f"{name}: " + ", ".join(cols))
        if "tcp" in results:
            for name in ("old", "new"):
                ratios = [a[0] / b[0] for a, b in zip(results[name], results["tcp"])]
                print(f"{name}/tcp per round: median {statistics.median(ratios):.2f} "
                      f"({min(ratios):.2f}-{max(ratios):.2f})")
    finally:
        for c in contenders:
            c.stop()
        if link:
            link.down()
        suite.shutil.rmtree(tmp, ignore_errors=True)
        suite.shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
