// The file layer: NAME.part written in order, resumed, renamed only when the
// SHA-256 matches.

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "improto/transfer/file.hpp"
#include "sim.hpp"

namespace tr = improto::transfer;
namespace fs = std::filesystem;
using improto::errc;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/improto-transfer-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void spit(const fs::path& p, std::string_view s) {
  std::ofstream f(p, std::ios::binary);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

std::span<const char> bytes(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

TEST_CASE("SHA-256 of known inputs") {
  tr::sha256 h;
  CHECK(tr::to_hex(h.finish()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  h.update(bytes("hello"));
  CHECK(tr::to_hex(h.finish()) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  temp_dir d;
  spit(d.path / "hello.txt", "hello");
  auto f = tr::sha256_file(d.path / "hello.txt");
  REQUIRE(f);
  CHECK(tr::to_hex(*f) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  CHECK(tr::sha256_file(d.path / "missing").error().code() == errc::not_found);
}

TEST_CASE("file_source reads with pread; a shrunk file is an io_error") {
  temp_dir d;
  spit(d.path / "f", "0123456789");
  auto src = tr::file_source::open(d.path / "f");
  REQUIRE(src);
  CHECK(src->size() == 10);
  char buf[4];
  REQUIRE(src->read(3, buf));
  CHECK(std::string_view(buf, 4) == "3456");
  CHECK(src->read(8, buf).error().code() == errc::io_error);
  CHECK(tr::file_source::open(d.path).error().code() == errc::io_error);  // a directory
}

TEST_CASE("file_source read-ahead: in order, behind it, across its end, at the end of the file") {
  temp_dir d;
  std::string bytes(tr::file_source::read_ahead * 3 + 777, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  spit(d.path / "f", bytes);
  auto src = tr::file_source::open(d.path / "f");
  REQUIRE(src);
  std::vector<char> buf(1210);
  auto check = [&](std::uint64_t at, std::size_t n) {
    CAPTURE(at);
    REQUIRE(src->read(at, std::span<char>(buf.data(), n)));
    CHECK(std::string_view(buf.data(), n) == std::string_view(bytes).substr(at, n));
  };
  for (std::uint64_t at = 0; at + 1210 <= bytes.size(); at += 1210) {
    check(at, 1210);
    if (at >= 5 * 1210 && at % (40 * 1210) == 0) check(at - 5 * 1210, 1210);  // a retransmission
  }
  check(bytes.size() - 100, 100);  // the short last datagram
  check(0, 1210);                  // far behind
  check(tr::file_source::read_ahead - 600, 1210);  // across a read-ahead boundary
  CHECK(src->read(bytes.size() - 10, std::span<char>(buf.data(), 11)).error().code() ==
        errc::io_error);
}

TEST_CASE("part file: write, resume from its length, rename on a matching hash") {
  temp_dir d;
  std::string file = sim::random_bytes(100000, 5);
  std::string want = sim::hex_sha256(file);
  fs::path final_path = d.path / "song.mp3";
  {
    auto part = tr::part_file::open(final_path, file.size());
    REQUIRE(part);
    CHECK(part->offset() == 0);
    REQUIRE(part->write(bytes(std::string_view(file).substr(0, 40000))));
    CHECK(part->finish(want).error().code() == errc::invalid_argument);  // not all there
  }  // broken off
  CHECK(fs::file_size(d.path / "song.mp3.part") == 40000);
  CHECK_FALSE(fs::exists(final_path));
  auto part = tr::part_file::open(final_path, file.size());
  REQUIRE(part);
  CHECK(part->offset() == 40000);  // the DOWNLOAD's Offset
  REQUIRE(part->write(bytes(std::string_view(file).substr(40000))));
  auto digest = part->finish(want);
  REQUIRE(digest);
  CHECK(tr::to_hex(*digest) == want);
  CHECK(slurp(final_path) == file);
  CHECK_FALSE(fs::exists(d.path / "song.mp3.part"));
}

TEST_CASE("part file: a hash mismatch is a clear error and nothing is presented as complete") {
  temp_dir d;
  fs::path final_path = d.path / "a.bin";
  auto part = tr::part_file::open(final_path, 5);
  REQUIRE(part);
  REQUIRE(part->write(bytes("hellO")));
  auto r = part->finish("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::hash_mismatch);
  CHECK(r.error().message().find("a.bin has SHA-256") != std::string::npos);
  CHECK_FALSE(fs::exists(final_path));
  CHECK_FALSE(fs::exists(d.path / "a.bin.part"));
}

TEST_CASE("part file: longer than the file is emptied; writing past the end is refused") {
  temp_dir d;
  spit(d.path / "x.part", "0123456789");
  auto part = tr::part_file::open(d.path / "x", 4);
  REQUIRE(part);
  CHECK(part->offset() == 0);
  CHECK(part->write(bytes("12345")).error().code() == errc::invalid_argument);
}

TEST_CASE("engine + file layer: a download to NAME.part, hashed and renamed") {
  temp_dir d;
  std::string file = sim::random_bytes(1 << 20, 8);
  spit(d.path / "server.bin", file);
  auto src = tr::file_source::open(d.path / "server.bin");
  REQUIRE(src);
  auto announced = tr::sha256_file(d.path / "server.bin");
  REQUIRE(announced);
  auto part = tr::part_file::open(d.path / "client.bin", src->size());
  REQUIRE(part);
  auto snd = tr::sender::create({.id = 3, .size = src->size()}, *src);
  auto rcv = tr::receiver::create({.id = 3, .key = 77, .size = src->size(), .window = 256 << 10});
  REQUIRE(snd);
  REQUIRE(rcv);
  sim::simulation link({.loss = 0.02}, {.loss = 0.02}, 6);
  sim::hooks h;
  h.reader = [&](tr::time_point, std::size_t n) {
    auto span = rcv->readable();
    REQUIRE(part->write(span.first(n)));
    return n;
  };
  link.run(*snd, *rcv, 256 << 10, h);
  REQUIRE(rcv->finished());
  CHECK(rcv->last_byte() == static_cast<std::uint8_t>(file.back()));
  auto digest = part->finish(tr::to_hex(*announced));
  REQUIRE(digest);
  CHECK(slurp(d.path / "client.bin") == file);
}
