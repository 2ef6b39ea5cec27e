#!/usr/bin/env bash
# budget: 540
# The transfer suite (issue 10, item 8): goodput and CPU of one large
# download, ours (imrelayd --files + imrelay /get) against plain TCP
# (tcp_file, sendfile) and kcptun carrying that TCP stream, on loopback and
# through a veth pair between two network namespaces at 0 % and 1 % loss
# (tests/support/lossy_link.py, nftables; needs root; see suite.py for how
# the link is set up on each path). 256 MiB
# (BENCH_TRANSFER_MIB), 3 alternating rounds. The work is in suite.py.
source "$(dirname "$0")/../lib/common.sh"
bench_init
# `ip netns exec` re-execs the programs: give them absolute paths.
/usr/bin/python3 "$BENCH_ROOT/bench/transfer/suite.py"
