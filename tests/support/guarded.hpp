#pragma once

// Places bytes right before an inaccessible page (as picohttpparser's tests
// do), so a decoder that reads one byte past its input crashes the test
// instead of passing by luck.

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace improto::test {

// Room for up to `capacity` bytes that end at a PROT_NONE page; place()
// copies bytes there, so one mapping serves many inputs (every prefix of a
// vector) without an mmap each.
class guarded_buffer {
 public:
  explicit guarded_buffer(std::size_t capacity) {
    auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t data_pages = (capacity + page - 1) / page;
    size_ = (data_pages + 1) * page;
    void* mem = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<char*>(mem);
    guard_ = base_ + data_pages * page;
    capacity_ = data_pages * page;
    if (mprotect(guard_, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
  }
  ~guarded_buffer() { munmap(base_, size_); }
  guarded_buffer(const guarded_buffer&) = delete;
  guarded_buffer& operator=(const guarded_buffer&) = delete;

  // The copy ends at the guard page; valid until the next place().
  std::string_view place(std::string_view bytes) {
    if (bytes.size() > capacity_) throw std::length_error("guarded_buffer too small");
    char* start = guard_ - bytes.size();
    if (!bytes.empty()) std::memcpy(start, bytes.data(), bytes.size());
    return {start, bytes.size()};
  }

 private:
  char* base_ = nullptr;
  char* guard_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// One input, placed once.
class guarded_bytes {
 public:
  explicit guarded_bytes(std::string_view bytes) : buffer_(bytes.size()), view_(buffer_.place(bytes)) {}
  std::string_view view() const noexcept { return view_; }

 private:
  guarded_buffer buffer_;
  std::string_view view_;
};

}  // namespace improto::test
