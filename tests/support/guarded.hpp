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

class guarded_bytes {
 public:
  explicit guarded_bytes(std::string_view bytes) {
    auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t data_pages = (bytes.size() + page - 1) / page;
    size_ = (data_pages + 1) * page;
    void* mem = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<char*>(mem);
    char* guard = base_ + data_pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    char* start = guard - bytes.size();
    if (!bytes.empty()) std::memcpy(start, bytes.data(), bytes.size());
    view_ = std::string_view(start, bytes.size());
  }
  ~guarded_bytes() { munmap(base_, size_); }
  guarded_bytes(const guarded_bytes&) = delete;
  guarded_bytes& operator=(const guarded_bytes&) = delete;

  std::string_view view() const noexcept { return view_; }

 private:
  char* base_ = nullptr;
  std::size_t size_ = 0;
  std::string_view view_;
};

}  // namespace improto::test
