#!/usr/bin/python3
"""The http suite's setup and checks, as a seed client would do them: each
request goes out in one write, on a connection of its own.

    client.py setup PORT OUT      register 20 entries, save the GET answer's body to OUT
    client.py compare PORT1 PORT2 both answer GET with the same status and body,
                                  and the second answers a POST with 200
"""

import socket
import sys


def request(port, method, body=b""):
    head = f"{method} /userlist.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: text/*\r\nContent-Length: {len(body)}\r\n"
    data = head.encode() + b"Connection: close\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, rest[:length]


def main():
    cmd = sys.argv[1]
    if cmd == "setup":
        port, out = int(sys.argv[2]), sys.argv[3]
        for i in range(20):
            status, body = request(port, "POST", f"REGISTER user{i:02d}@127.0.0.1:{40000 + i}".encode())
            if status != 200:
                sys.exit(f"REGISTER answered {status} {body[:80]!r}")
        status, body = request(port, "GET")
        if status != 200 or body.count(b",") != 20:
            sys.exit(f"GET answered {status} {body[:80]!r}")
        with open(out, "wb") as f:
            f.write(body)
    elif cmd == "compare":
        ours, anchor = int(sys.argv[2]), int(sys.argv[3])
        a, b = request(ours, "GET"), request(anchor, "GET")
        if a != b:
            sys.exit(f"the anchor does not serve the same answer: {a!r} vs {b!r}")
        if request(anchor, "POST", b"REGISTER x@127.0.0.1:1")[0] != 200:
            sys.exit("the anchor does not answer POST with 200")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
