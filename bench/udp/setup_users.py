"""Sets up imbuddyd for the udp benchmarks: 100 users (u000..u099) with 5
buddies each, all ONLINE. `setup_users.py TCP_PORT UDP_PORT` prints the GET
reply's length; `setup_users.py --reply-length UDP_PORT` only measures it."""
import concurrent.futures as cf
import socket
import sys
import time


def reply_length(udp):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(b"GET u000", ("127.0.0.1", udp))
    reply = u.recv(65536)
    if reply.count(b"\n") != 5 or b" 100 " not in reply:
        sys.exit(f"GET u000 answered {reply!r}")
    return len(reply)


def register(tcp, timeout=10):
    """The users and their buddy lists, over TCP (statuses not set)."""
    def req(line):
        with socket.create_connection(("127.0.0.1", tcp), timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            return s.makefile().readline().strip()
    with cf.ThreadPoolExecutor(16) as ex:
        got = set(ex.map(req, [f"REG u{i:03d}" for i in range(100)]))
        got |= set(ex.map(req, [f"ADD u{i:03d} u{(i + k) % 100:03d}"
                                for i in range(100) for k in range(1, 6)]))
    if got != {"200 OK"}:
        sys.exit(f"setting up users: {got}")


def setup(tcp, udp):
    register(tcp)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(100):
        u.sendto(f"SET u{i:03d} 100 {40000 + i:05d}".encode(), ("127.0.0.1", udp))
    # The SETs have no reply: wait until a GET shows the last one.
    for _ in range(100):
        try:
            return reply_length(udp)
        except SystemExit:
            time.sleep(0.1)
    return reply_length(udp)


if __name__ == "__main__":
    if sys.argv[1] == "--reply-length":
        print(reply_length(int(sys.argv[2])))
    else:
        print(setup(int(sys.argv[1]), int(sys.argv[2])))
