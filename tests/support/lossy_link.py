#!/usr/bin/python3
"""A real lossy link for tests and benchmarks: two network namespaces joined
by a veth pair, with nftables dropping a share of the packets at random.

    with LossyLink(loss=1) as link:           # 1 % of packets dropped, each way
        server = link.popen("a", ["imrelayd", "--host", link.addr("a"), ...])
        client = link.popen("b", ["imrelay", "alice", link.addr("a"), ...])
        link.set_loss(5)                      # change it on the fly
        link.dropped()                        # packets the rule dropped so far

Why it is built this way:
* `tc netem` is not available on our kernels; nftables' `numgen random mod
  100 < N drop` is, in each namespace's input hook on the veth, so both
  directions lose N % independently.
* The veth ends are created inside the namespaces (never in the root
  namespace) with private addresses (10.77.X.1/30 and .2): no packet of a
  test can leave them, and concurrent runs do not collide (the names carry
  the pid and a counter; the addresses live in different namespaces).
* `gso_max_segs 1` on both ends (wire_packets=True, the default) makes the
  kernel cut every GSO/TSO super-packet (TCP segments, UDP_SEGMENT batches)
  into wire-sized packets before the veth, so nftables sees, and drops,
  single 1500-byte packets as on a real link, not 64 KiB bursts. veth does
  no GRO by default, so the peer's input hook sees them one by one too. The
  price: the whole stack then handles every 1500-byte packet, which costs
  kernel TCP far more than it does on a NIC with TSO/GRO (about 8x less
  goodput here); wire_packets=False keeps the offloads (and drops whole
  super-packets).
* Cleanup always runs: on leaving the `with` block (exceptions included),
  at interpreter exit, on SIGTERM/SIGINT/SIGHUP (turned into SystemExit), and
  for what a SIGKILLed run left: every new LossyLink first removes the
  namespaces of runs whose process is gone. Processes still running in a
  namespace are killed before it is deleted (a namespace lives as long as a
  process in it).

Also a command line, for trying things by hand:
    lossy_link.py up [--loss N]   # prints the namespaces and addresses; stays up until ^C
    lossy_link.py cleanup         # removes leftovers of dead runs
"""

import atexit
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "imloss"
_counter = itertools.count()
_live = []  # links not yet torn down, for atexit and signals


class Unavailable(Exception):
    """Network namespaces cannot be made here (not root, no ip/nft, no
    permission); the message says why."""


def _run(args, check=True, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=30, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def unavailable_reason():
    """None when namespaces, veth and nftables work here, else why not."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"'{tool}' is not installed (Debian packages iproute2, nftables)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"{PREFIX}{os.getpid()}probe{next(_counter)}"
    r = _run(["ip", "netns", "add", name], check=False)
    if r.returncode != 0:
        return f"'ip netns add' is not permitted here: {r.stderr.strip()}"
    try:
        r = _run(["ip", "netns", "exec", name, "nft", "add", "table", "inet", "probe"], check=False)
        if r.returncode != 0:
            return f"nftables does not work in a network namespace: {r.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", name], check=False)
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_namespace(ns):
    # Kill whatever still runs inside, then delete: a namespace with a
    # process in it would outlive `ip netns del`.
    r = _run(["ip", "netns", "pids", ns], check=False)
    pids = [int(p) for p in r.stdout.split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _pid_alive(p) and not _is_zombie(p)]
            if pids:
                time.sleep(0.05)
        if not pids:
            break
    _run(["ip", "netns", "del", ns], check=False)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def cleanup_stale():
    """Deletes the namespaces of earlier runs whose process is gone (a run
    killed with SIGKILL cannot clean up after itself)."""
    r = _run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        m = re.fullmatch(PREFIX + r"(\d+)x\d+[ab]", ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete_namespace(ns)


def _teardown_all():
    for link in list(_live):
        link.down()


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


_handlers_installed = False


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_teardown_all)
    # Only where nobody else handles them already (pytest keeps SIGINT).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass


class LossyLink:
    """Namespaces `a` and `b` joined by a veth pair; `loss` percent of the
    packets arriving on either end are dropped (0 to 100, integers)."""

    def __init__(self, loss=0, mtu=1500, wire_packets=True):
        if not 0 <= int(loss) <= 100:
            raise ValueError("loss: expected 0 to 100 percent")
        n = next(_counter)
        self.tag = f"{PREFIX}{os.getpid()}x{n}"
        self.ns = {"a": self.tag + "a", "b": self.tag + "b"}
        self.dev = {"a": f"il{os.getpid() % 100000}x{n % 100}a", "b": f"il{os.getpid() % 100000}x{n % 100}b"}
        subnet = 4 * (n % 64)
        self.addrs = {"a": f"10.77.{os.getpid() % 250}.{subnet + 1}",
                      "b": f"10.77.{os.getpid() % 250}.{subnet + 2}"}
        self.loss = int(loss)
        self.mtu = mtu
        self.wire_packets = wire_packets
        self.is_up = False

    # ------------------------------------------------------------ set-up
    def up(self):
        reason = unavailable_reason()
        if reason:
            raise Unavailable(reason)
        _install_handlers()
        cleanup_stale()
        _live.append(self)
        self.is_up = True
        try:
            a, b = self.ns["a"], self.ns["b"]
            _run(["ip", "netns", "add", a])
            _run(["ip", "netns", "add", b])
            _run(["ip", "-n", a, "link", "add", self.dev["a"], "type", "veth",
                  "peer", "name", self.dev["b"], "netns", b])
            for side in ("a", "b"):
                ns, dev = self.ns[side], self.dev[side]
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                segs = ["gso_max_segs", "1"] if self.wire_packets else []
                _run(["ip", "-n", ns, "link", "set", dev, "mtu", str(self.mtu), *segs])
                _run(["ip", "-n", ns, "addr", "add", self.addrs[side] + "/30", "dev", dev])
                _run(["ip", "-n", ns, "link", "set", dev, "up"])
            self.set_loss(self.loss)
        except BaseException:
            self.down()
            raise
        return self

    def set_loss(self, percent):
        """Drops `percent` % of the packets arriving on each end from now on."""
        percent = int(percent)
        if not 0 <= percent <= 100:
            raise ValueError("loss: expected 0 to 100 percent")
        for side in ("a", "b"):
            rules = (f"table inet lossy\n"
                     f"delete table inet lossy\n"
                     f"table inet lossy {{\n"
                     f"  chain input {{\n"
                     f"    type filter hook input priority 0; policy accept;\n"
                     f"    iifname \"{self.dev[side]}\" numgen random mod 100 < {percent} counter drop\n"
                     f"  }}\n"
                     f"}}\n")
            _run(["ip", "netns", "exec", self.ns[side], "nft", "-f", "-"], input=rules)
        self.loss = percent

    def dropped(self):
        """Packets dropped by the rule so far, both ends together (the
        counters restart with set_loss)."""
        total = 0
        for side in ("a", "b"):
            r = _run(["ip", "netns", "exec", self.ns[side], "nft", "list", "table", "inet", "lossy"])
            m = re.search(r"counter packets (\d+)", r.stdout)
            total += int(m.group(1)) if m else 0
        return total

    def down(self):
        if not self.is_up:
            return
        for side in ("a", "b"):
            _delete_namespace(self.ns[side])
        self.is_up = False
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False

    # ----------------------------------------------------------- running
    def addr(self, side):
        return self.addrs[side]

    def command(self, side, args):
        """`args` run inside namespace `side` ('a' or 'b')."""
        return ["ip", "netns", "exec", self.ns[side], *map(str, args)]

    def popen(self, side, args, **kw):
        return subprocess.Popen(self.command(side, args), **kw)

    def exists(self):
        r = _run(["ip", "netns", "list"], check=False)
        names = {line.split()[0] for line in r.stdout.splitlines() if line.split()}
        return any(ns in names for ns in self.ns.values())


def main(argv):
    if len(argv) >= 1 and argv[0] == "cleanup":
        cleanup_stale()
        return 0
    if len(argv) >= 1 and argv[0] == "up":
        loss = int(argv[argv.index("--loss") + 1]) if "--loss" in argv else 0
        signal.signal(signal.SIGINT, _on_signal)
        with LossyLink(loss) as link:
            print(f"namespace {link.ns['a']} address {link.addr('a')}; "
                  f"namespace {link.ns['b']} address {link.addr('b')}; loss {loss} %; "
                  f"^C tears it down", flush=True)
            signal.pause()
        return 0
    print(__doc__.split("Also a command line")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
