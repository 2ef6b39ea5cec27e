#pragma once

// improto::error -> Python exception. Binding code throws python::raised
// (never across the library's API, which returns errors as values); the
// translator registered by register_errors() turns it into the
// improto.Error subclass for its errc (see improto/_errors.py).

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <pybind11/pybind11.h>

#include "improto/error.hpp"

namespace improto::python {

class raised : public std::exception {
 public:
  // wire_code: the protocol's own code (ERROR 102, 406, ...) where the
  // error came with one.
  explicit raised(error e, std::optional<int> wire_code = std::nullopt)
      : error_(std::move(e)), wire_code_(wire_code), message_(error_.message()) {}

  const error& err() const noexcept { return error_; }
  std::optional<int> wire_code() const noexcept { return wire_code_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  error error_;
  std::optional<int> wire_code_;
  std::string message_;
};

[[noreturn]] inline void raise(errc code, std::string detail) {
  throw raised(error(code, std::move(detail)));
}

// The value, or the error raised as the matching improto.Error subclass.
template <class T>
T value_or_raise(result<T>&& r) {
  if (!r) throw raised(std::move(r.error()));
  return std::move(*r);
}

// Adds the errc table and the exception translator to the module.
void register_errors(pybind11::module_& m);

}  // namespace improto::python
