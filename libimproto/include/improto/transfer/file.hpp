#pragma once

// The file side of a download, outside the sans-I/O engine: the server's
// data_source (pread), the client's `NAME.part` (pwrite, SHA-256 of the bytes
// as they are written, rename to NAME only when the hash matches), and
// SHA-256 of a whole file for the TRANSFER reply. SHA-256 is OpenSSL's
// libcrypto (EVP, SHA-NI accelerated); its headers stay out of this one.
// Link improto::files.

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "improto/error.hpp"
#include "improto/transfer/engine.hpp"

namespace improto::transfer {

using digest = std::array<std::uint8_t, 32>;

// Lower-case hex, 64 digits.
std::string to_hex(const digest& d);

class sha256 {
 public:
  sha256();
  ~sha256();
  sha256(sha256&&) noexcept;
  sha256& operator=(sha256&&) noexcept;
  void update(std::span<const char> bytes);
  digest finish();  // then the object starts over

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// SHA-256 of a whole file (io_error or not_found with the path).
result<digest> sha256_file(const std::filesystem::path& path);

class file_source final : public data_source {
 public:
  // A regular file, opened read-only (O_NOFOLLOW is the caller's choice:
  // pass an fd opened with openat for directory confinement).
  static result<file_source> open(const std::filesystem::path& path);
  static result<file_source> adopt(int fd);  // takes ownership
  file_source(file_source&&) noexcept;
  file_source& operator=(file_source&&) noexcept;
  ~file_source() override;

  std::uint64_t size() const noexcept { return size_; }
  // pread; io_error when the file has shrunk under us. Small reads at or
  // past the last read-ahead position come from a read-ahead buffer filled
  // by one pread of read_ahead bytes (a sender reads one datagram at a
  // time); reads behind it (retransmissions) go to the file directly.
  result<void> read(std::uint64_t offset, std::span<char> out) override;

  static constexpr std::size_t read_ahead = 256 * 1024;

 private:
  file_source(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  result<void> pread_all(std::uint64_t offset, std::span<char> out);
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::vector<char> ahead_;     // allocated on the first small read
  std::uint64_t ahead_at_ = 0;  // file offset of ahead_[0]
  std::size_t ahead_len_ = 0;   // valid bytes in ahead_
};

// `NAME.part` next to NAME. Bytes are appended in order only, so the part
// file's length is always the verified prefix: a later download resumes
// from offset() (the TRANSFER's Offset).
class part_file {
 public:
  // Opens or creates `final_path` + ".part" for a file of `size` bytes and
  // hashes what it already holds. A part file longer than `size` cannot be
  // a prefix of this file: it is emptied.
  static result<part_file> open(const std::filesystem::path& final_path, std::uint64_t size);
  part_file(part_file&&) noexcept;
  part_file& operator=(part_file&&) noexcept;
  ~part_file();

  std::uint64_t offset() const noexcept { return offset_; }
  std::uint64_t size() const noexcept { return size_; }
  const std::filesystem::path& part_path() const noexcept { return part_; }

  // Appends bytes at offset() (pwrite), hashing them.
  result<void> write(std::span<const char> bytes);
  // Every byte written: compares the SHA-256 with `expected_hex` (64 hex
  // digits, any case). On a match: fsync, rename to the final name, return
  // the digest. On a mismatch: hash_mismatch naming both hashes, and the
  // part file is removed (its bytes are not the file's). Before the last
  // byte: invalid_argument.
  result<digest> finish(std::string_view expected_hex);
  // Deletes the part file (a cancelled download the user does not want to
  // resume).
  void remove();

 private:
  part_file(int fd, std::filesystem::path final_path, std::filesystem::path part,
            std::uint64_t size)
      : fd_(fd), final_(std::move(final_path)), part_(std::move(part)), size_(size) {}
  int fd_ = -1;
  std::filesystem::path final_;
  std::filesystem::path part_;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;
  sha256 hash_;
};

}  // namespace improto::transfer
