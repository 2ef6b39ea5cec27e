#include <cstdint>

#include "codecs.hpp"

namespace improto::python {

bool valid_utf8(std::string_view s) noexcept {
  // RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF;
  // exactly what Python's strict UTF-8 decoder accepts.
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

std::string text_arg(py::handle value, const char* field) {
  if (!PyUnicode_Check(value.ptr())) {
    throw py::type_error(std::string(field) + ": expected str, not " +
                         Py_TYPE(value.ptr())->tp_name);
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(value.ptr(), &size);  // fails on lone surrogates
  if (data == nullptr) throw py::error_already_set();
  return std::string(data, static_cast<std::size_t>(size));
}

std::string bytes_arg(py::handle value, const char* field) {
  PyObject* o = value.ptr();
  if (PyBytes_Check(o)) {
    return std::string(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
  }
  if (PyUnicode_Check(o)) return text_arg(value, field);
  if (PyObject_CheckBuffer(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) != 0) throw py::error_already_set();
    std::string out(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
    return out;
  }
  throw py::type_error(std::string(field) + ": expected bytes, not " + Py_TYPE(o)->tp_name);
}

void raise_protocol(const error& e, std::optional<int> code, std::optional<py::list> messages) {
  // improto._errors builds every improto exception (one class table).
  static py::handle from_core =
      py::object(py::module_::import("improto._errors").attr("_from_core")).release();
  py::object c = code ? py::object(py::int_(*code)) : py::object(py::none());
  // Details quote input; never let a stray byte turn into a UnicodeDecodeError.
  auto text = [](const std::string& s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "backslashreplace");
    if (o == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
  };
  py::object exc = from_core(std::string(name(e.code())), text(e.message()), text(e.detail()), c);
  if (messages) exc.attr("messages") = *messages;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

namespace {

std::size_t limit_arg(const char* what, const py::object& value, std::size_t fallback) {
  if (value.is_none()) return fallback;
  auto v = value.cast<long long>();
  if (v < 1) raise(errc::invalid_config, std::string(what) + ": expected a whole number above 0");
  return static_cast<std::size_t>(v);
}

}  // namespace

wire::limits limits_arg(wire::limits defaults, const py::object& max_line,
                        const py::object& max_headers, const py::object& max_body) {
  return {limit_arg("max_line", max_line, defaults.max_line),
          limit_arg("max_headers", max_headers, defaults.max_headers),
          limit_arg("max_body", max_body, defaults.max_body)};
}

}  // namespace improto::python
