// tcp_file: the plain-TCP baseline of the transfer suite (bench/transfer).
//
//   tcp_file serve --host H --port P --file F
//       sends every connection the whole file with sendfile(2) (a thread
//       each), then closes it; prints 'listening on H:P' on
//       stderr; runs until SIGTERM.
//   tcp_file get --host H --port P --out F [--size N]
//       connects, writes what arrives to F (pwrite), SHA-256 over it as it
//       arrives, fsync at the end: the same work our client does with a
//       download (part file, hash, fsync). Prints one JSON line on stdout:
//       {"bytes":N,"seconds":S,"sha256":"..."}; exit 1 when fewer than N
//       bytes arrived.
//
// The kcptun rows run `get` against kcptun-client, which carries the same
// TCP stream over its reliable UDP.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "improto/transfer/file.hpp"

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "tcp_file: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

sockaddr_in address(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "tcp_file: not an IPv4 address: %s\n", host.c_str());
    std::exit(2);
  }
  return a;
}

int serve(const std::string& host, int port, const std::string& path) {
  int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file < 0) die("open " + path);
  struct stat st{};
  if (::fstat(file, &st) != 0) die("fstat");
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = address(host, port);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind");
  if (::listen(ls, 16) != 0) die("listen");
  socklen_t len = sizeof a;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
  std::fprintf(stderr, "listening on %s:%d\n", host.c_str(), ntohs(a.sin_port));
  for (;;) {
    int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      die("accept");
    }
    std::thread([c, file, size = st.st_size] {
      off_t off = 0;
      while (off < size) {
        ssize_t n = ::sendfile(c, file, &off, static_cast<std::size_t>(size - off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          std::fprintf(stderr, "tcp_file: sendfile stopped at %lld: %s\n",
                       static_cast<long long>(off), std::strerror(errno));
          break;
        }
      }
      ::shutdown(c, SHUT_WR);
      char drain[256];
      while (::read(c, drain, sizeof drain) > 0) {
      }
      ::close(c);
    }).detach();
  }
}

int get(const std::string& host, int port, const std::string& path, long long size) {
  auto t0 = std::chrono::steady_clock::now();
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = address(host, port);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) die("open " + path);
  improto::transfer::sha256 hash;
  std::vector<char> buf(1 << 20);
  long long got = 0;
  for (;;) {
    ssize_t n = ::read(s, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read");
    if (n == 0) break;
    hash.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
    for (ssize_t w = 0; w < n;) {
      ssize_t k = ::pwrite(out, buf.data() + w, static_cast<std::size_t>(n - w), got + w);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) die("pwrite");
      w += k;
    }
    got += n;
  }
  if (::fsync(out) != 0) die("fsync");
  ::close(out);
  ::close(s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"bytes\":%lld,\"seconds\":%.6f,\"sha256\":\"%s\"}\n", got, secs,
              improto::transfer::to_hex(hash.finish()).c_str());
  if (size >= 0 && got != size) {
    std::fprintf(stderr, "tcp_file: %lld of %lld bytes arrived\n", got, size);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tcp_file serve|get --host H --port P (--file F | --out F [--size N])\n");
    return 2;
  }
  std::string mode = argv[1], host = "127.0.0.1", file;
  int port = 0;
  long long size = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--host") host = argv[i + 1];
    else if (k == "--port") port = std::atoi(argv[i + 1]);
    else if (k == "--file" || k == "--out") file = argv[i + 1];
    else if (k == "--size") size = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "tcp_file: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (file.empty()) {
    std::fprintf(stderr, "tcp_file: --file/--out missing\n");
    return 2;
  }
  if (mode == "serve") return serve(host, port, file);
  if (mode == "get") return get(host, port, file, size);
  std::fprintf(stderr, "tcp_file: unknown mode %s\n", mode.c_str());
  return 2;
}
