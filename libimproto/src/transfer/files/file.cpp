#include "improto/transfer/file.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "improto/wire/text.hpp"

namespace improto::transfer {
namespace {

error sys_error(std::string_view what, const std::filesystem::path& path, int err) {
  return error(err == ENOENT ? errc::not_found : errc::io_error,
               std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

constexpr std::size_t chunk = 1 << 20;

}  // namespace

std::string to_hex(const digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (auto b : d) {
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

// ------------------------------------------------------------------ sha256

struct sha256::impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  impl() { reset(); }
  ~impl() { EVP_MD_CTX_free(ctx); }
  void reset() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
};

sha256::sha256() : impl_(std::make_unique<impl>()) {}
sha256::~sha256() = default;
sha256::sha256(sha256&&) noexcept = default;
sha256& sha256::operator=(sha256&&) noexcept = default;

void sha256::update(std::span<const char> bytes) {
  EVP_DigestUpdate(impl_->ctx, bytes.data(), bytes.size());
}

digest sha256::finish() {
  digest d{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, d.data(), &n);
  impl_->reset();
  return d;
}

result<digest> sha256_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(sys_error("cannot open", path, errno));
  sha256 h;
  std::vector<char> buf(chunk);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return tl::unexpected(sys_error("cannot read", path, err));
    }
    if (n == 0) break;
    h.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
  }
  ::close(fd);
  return h.finish();
}

// ------------------------------------------------------------- file_source

result<file_source> file_source::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(sys_error("cannot open", path, errno));
  return adopt(fd);
}

result<file_source> file_source::adopt(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return improto::fail(errc::io_error, "not a regular file");
  }
  return file_source(fd, static_cast<std::uint64_t>(st.st_size));
}

file_source::file_source(file_source&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      size_(o.size_),
      ahead_(std::move(o.ahead_)),
      ahead_at_(o.ahead_at_),
      ahead_len_(std::exchange(o.ahead_len_, 0)) {}

file_source& file_source::operator=(file_source&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
    ahead_ = std::move(o.ahead_);
    ahead_at_ = o.ahead_at_;
    ahead_len_ = std::exchange(o.ahead_len_, 0);
  }
  return *this;
}

file_source::~file_source() {
  if (fd_ >= 0) ::close(fd_);
}

result<void> file_source::read(std::uint64_t offset, std::span<char> out) {
  // One pread per ~1.2 KiB datagram was a third of the sender's system
  // calls; one per read_ahead bytes serves the same in-order reads.
  if (out.size() <= read_ahead / 4 && offset >= ahead_at_) {
    if (offset + out.size() > ahead_at_ + ahead_len_) {
      if (ahead_.empty()) ahead_.resize(read_ahead);
      auto want = static_cast<std::size_t>(std::min<std::uint64_t>(
          read_ahead, size_ > offset ? size_ - offset : 0));
      ahead_len_ = 0;
      ahead_at_ = offset;
      if (want >= out.size()) {
        if (auto r = pread_all(offset, std::span<char>(ahead_.data(), want)); !r) return r;
        ahead_len_ = want;
      }
    }
    if (offset + out.size() <= ahead_at_ + ahead_len_) {
      std::memcpy(out.data(), ahead_.data() + (offset - ahead_at_), out.size());
      return {};
    }
  }
  return pread_all(offset, out);
}

result<void> file_source::pread_all(std::uint64_t offset, std::span<char> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return improto::fail(errc::io_error, std::string("read: ") + std::strerror(errno));
    if (n == 0) {
      return improto::fail(errc::io_error, "the file ends at " + std::to_string(offset + done) +
                                               ": it changed during the transfer");
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

// --------------------------------------------------------------- part_file

result<part_file> part_file::open(const std::filesystem::path& final_path, std::uint64_t size) {
  std::filesystem::path part = final_path;
  part += ".part";
  int fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return tl::unexpected(sys_error("cannot open", part, errno));
  part_file f(fd, final_path, part, size);
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return improto::fail(errc::io_error, part.string() + " is not a regular file");
  }
  auto have = static_cast<std::uint64_t>(st.st_size);
  if (have > size) {
    if (::ftruncate(fd, 0) != 0) return tl::unexpected(sys_error("cannot truncate", part, errno));
    have = 0;
  }
  std::vector<char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(chunk, have)));
  while (f.offset_ < have) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), have - f.offset_));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(f.offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return tl::unexpected(sys_error("cannot read", part, n < 0 ? errno : EIO));
    f.hash_.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
    f.offset_ += static_cast<std::uint64_t>(n);
  }
  return f;
}

part_file::part_file(part_file&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      final_(std::move(o.final_)),
      part_(std::move(o.part_)),
      size_(o.size_),
      offset_(o.offset_),
      hash_(std::move(o.hash_)) {}

part_file& part_file::operator=(part_file&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    final_ = std::move(o.final_);
    part_ = std::move(o.part_);
    size_ = o.size_;
    offset_ = o.offset_;
    hash_ = std::move(o.hash_);
  }
  return *this;
}

part_file::~part_file() {
  if (fd_ >= 0) ::close(fd_);
}

result<void> part_file::write(std::span<const char> bytes) {
  if (fd_ < 0) return improto::fail(errc::io_error, "the part file is closed");
  if (bytes.size() > size_ - offset_) {
    return improto::fail(errc::invalid_argument, "bytes past the end of the file");
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(offset_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return tl::unexpected(sys_error("cannot write", part_, errno));
    done += static_cast<std::size_t>(n);
  }
  hash_.update(bytes);
  offset_ += bytes.size();
  return {};
}

result<digest> part_file::finish(std::string_view expected_hex) {
  if (fd_ < 0) return improto::fail(errc::io_error, "the part file is closed");
  if (offset_ != size_) {
    return improto::fail(errc::invalid_argument, part_.string() + " holds " +
                                                     std::to_string(offset_) + " of " +
                                                     std::to_string(size_) + " bytes");
  }
  digest d = hash_.finish();
  std::string got = to_hex(d);
  if (!wire::iequals(got, expected_hex)) {
    remove();
    return improto::fail(errc::hash_mismatch,
                         final_.filename().string() + " has SHA-256 " + got + ", the server announced " +
                             std::string(expected_hex) + "; the partial file was removed");
  }
  if (::fsync(fd_) != 0) return tl::unexpected(sys_error("cannot sync", part_, errno));
  ::close(std::exchange(fd_, -1));
  std::error_code ec;
  std::filesystem::rename(part_, final_, ec);
  if (ec) {
    return improto::fail(errc::io_error,
                         "cannot rename " + part_.string() + " to " + final_.string() + ": " +
                             ec.message());
  }
  return d;
}

void part_file::remove() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  std::error_code ec;
  std::filesystem::remove(part_, ec);
}

}  // namespace improto::transfer
