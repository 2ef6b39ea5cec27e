#pragma once

// Shared machinery of the codec bindings (codecs_<protocol>.cpp): field
// conversions, message classes with keyword construction, __eq__ and
// __repr__, and stream_codec, the Python face of a C++ stream decoder.
//
// Rules every binding follows:
//  * names and other text fields are `str` on the Python side; a decoded
//    message whose text field is not UTF-8 is refused with ProtocolError
//    (invalid_argument) instead of handing out a str that cannot exist;
//  * bodies, datagram payloads and chat text are `bytes` (also accepted:
//    bytearray, memoryview and str, which is encoded as UTF-8);
//  * decode errors raise the improto.ProtocolError subclass for the errc,
//    with .code (the wire code a server answers with) and .messages (what
//    the same call decoded before the error).

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>

#include "errors.hpp"
#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::python {

namespace py = pybind11;

// ------------------------------------------------------------- conversions

bool valid_utf8(std::string_view s) noexcept;

// A str argument as UTF-8 bytes; TypeError for anything else (bytes too:
// names are text).
std::string text_arg(py::handle value, const char* field);
// A bytes-like argument (bytes, bytearray, memoryview, or str as UTF-8).
std::string bytes_arg(py::handle value, const char* field);

inline py::str to_str(std::string_view s) {
  // Decoded text fields are checked with valid_utf8() before they become
  // objects; a failure here is a bug, reported as UnicodeDecodeError.
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}
inline py::bytes to_bytes(std::string_view s) { return py::bytes(s.data(), s.size()); }

// Puts a submodule into sys.modules, so `from improto._core.relay import
// Send` works like for a package.
inline void importable(py::module_& sub) {
  py::module_::import("sys").attr("modules")[sub.attr("__name__")] = sub;
}

// py::cast(std::move(v)) for a bound class, without looking its type up by
// name on every call (a hash of the mangled name and a strcmp): decoders
// create one object per message, and that lookup was a measurable part of it.
template <class T>
py::object new_object(T&& v) {
  using U = std::decay_t<T>;
  static const py::detail::type_info* type = py::detail::get_type_info(typeid(U));
  if (type == nullptr) return py::cast(std::forward<T>(v));  // not bound: the slow, checked path
  py::handle h = py::detail::type_caster_generic::cast(
      &v, py::return_value_policy::move, py::handle(), type, nullptr,
      [](const void* p) -> void* { return new U(std::move(*const_cast<U*>(static_cast<const U*>(p)))); });
  if (!h) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(h);
}

// Raises the ProtocolError (or subclass) for `e`, with .code and, when
// given, .messages.
[[noreturn]] void raise_protocol(const error& e, std::optional<int> code,
                                 std::optional<py::list> messages = std::nullopt);

// wire::limits from the keyword arguments max_line / max_headers / max_body
// (None: the protocol's default); ConfigError for values below 1.
wire::limits limits_arg(wire::limits defaults, const py::object& max_line,
                        const py::object& max_headers, const py::object& max_body);

// Sets __eq__ (same type and equal fields; NotImplemented otherwise) and
// __hash__ = None (the objects are mutable).
template <class T, class... Extra>
void add_eq(py::class_<T, Extra...>& cls) {
  cls.def(
      "__eq__",
      [](const T& self, py::handle other) -> py::object {
        if (!py::isinstance<T>(other)) {
          return py::reinterpret_borrow<py::object>(Py_NotImplemented);
        }
        return py::bool_(self == other.cast<const T&>());
      },
      py::is_operator());
  cls.attr("__hash__") = py::none();
}

// Read/write attributes of the common kinds: str and bytes fields. They are
// plain CPython getset descriptors rather than pybind11 properties: reading
// `msg.body` is then a C call (tens of ns), not a pybind11 dispatch (about
// ten times that), which matters to code that decodes many messages.
namespace detail {

template <class T>
T* self_value(PyObject* self) {
  // The descriptor checked that self is an instance of the class; ours are
  // single classes without multiple inheritance: the simple layout.
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  if (!inst->simple_layout) return static_cast<T*>(inst->get_value_and_holder().value_ptr());
  return static_cast<T*>(inst->simple_value_holder[0]);
}

// The value behind self, or nullptr with a TypeError set.
template <class T>
T* initialized_value(PyObject* self) {
  T* v = self_value<T>(self);
  if (v == nullptr) PyErr_SetString(PyExc_TypeError, "object not initialized");
  return v;
}

// Runs f, turning a C++ exception into the pending Python error and
// `failed` (a getset function must not throw).
template <class R, class F>
R with_python_errors(R failed, F&& f) {
  try {
    return f();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (py::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return failed;
}

// The setter's part common to every attribute: no deleting, an initialized
// object; then store(T&).
template <class T, class Store>
int set_attribute(PyObject* self, PyObject* value, const char* name, Store&& store) {
  if (value == nullptr) {
    PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
    return -1;
  }
  T* v = initialized_value<T>(self);
  if (v == nullptr) return -1;
  return with_python_errors(-1, [&] {
    store(*v);
    return 0;
  });
}

template <class T, class... Extra>
void install_getset(py::class_<T, Extra...>& cls, PyGetSetDef* def) {
  PyObject* descr = PyDescr_NewGetSet(reinterpret_cast<PyTypeObject*>(cls.ptr()), def);
  if (descr == nullptr) throw py::error_already_set();
  cls.attr(def->name) = py::reinterpret_steal<py::object>(descr);
}

template <class T>
struct field_closure {
  std::string T::*member;
  const char* name;
};

template <class T, bool Bytes>
PyObject* get_field(PyObject* self, void* closure) {
  auto* c = static_cast<field_closure<T>*>(closure);
  T* v = initialized_value<T>(self);
  if (v == nullptr) return nullptr;
  const std::string& s = v->*(c->member);
  if constexpr (Bytes) {
    return PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
  } else {
    return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  }
}

template <class T, bool Bytes>
int set_field(PyObject* self, PyObject* value, void* closure) {
  auto* c = static_cast<field_closure<T>*>(closure);
  return set_attribute<T>(self, value, c->name, [&](T& v) {
    v.*(c->member) = Bytes ? bytes_arg(value, c->name) : text_arg(value, c->name);
  });
}

template <class T, bool Bytes, class... Extra>
void add_field(py::class_<T, Extra...>& cls, const char* name, std::string T::*member,
               const char* doc) {
  // One per field for the life of the process, like the class itself.
  auto* closure = new field_closure<T>{member, name};
  install_getset(cls, new PyGetSetDef{name, &get_field<T, Bytes>, &set_field<T, Bytes>, doc, closure});
}

template <class T>
struct property_closure {
  py::object (*get)(const T&);
  void (*set)(T&, py::handle);
  const char* name;
};

template <class T>
PyObject* get_property(PyObject* self, void* closure) {
  auto* c = static_cast<property_closure<T>*>(closure);
  T* v = initialized_value<T>(self);
  if (v == nullptr) return nullptr;
  return with_python_errors<PyObject*>(nullptr, [&] { return c->get(*v).release().ptr(); });
}

template <class T>
int set_property(PyObject* self, PyObject* value, void* closure) {
  auto* c = static_cast<property_closure<T>*>(closure);
  return set_attribute<T>(self, value, c->name, [&](T& v) { c->set(v, value); });
}

}  // namespace detail

// A read/write attribute computed by get / stored by set, as a getset
// descriptor (see above).
template <class T, class... Extra>
void fast_property(py::class_<T, Extra...>& cls, const char* name, py::object (*get)(const T&),
                   void (*set)(T&, py::handle), const char* doc) {
  auto* closure = new detail::property_closure<T>{get, set, name};
  detail::install_getset(
      cls, new PyGetSetDef{name, &detail::get_property<T>, &detail::set_property<T>, doc, closure});
}

template <class T, class... Extra>
void text_field(py::class_<T, Extra...>& cls, const char* name, std::string T::*member,
                const char* doc) {
  detail::add_field<T, false>(cls, name, member, doc);
}
template <class T, class... Extra>
void bytes_field(py::class_<T, Extra...>& cls, const char* name, std::string T::*member,
                 const char* doc) {
  detail::add_field<T, true>(cls, name, member, doc);
}

// Calls f with `h` as the first of Ts it is an instance of; TypeError
// ("expected <what>") when it is none of them.
template <class T, class... Rest, class F>
py::object visit_as(py::handle h, F&& f, const char* what) {
  if (py::isinstance<T>(h)) {
    auto r = f(h.cast<const T&>());
    if constexpr (py::detail::is_pyobject<decltype(r)>::value) {
      py::object out = std::move(r);
      return out;
    } else {
      return py::cast(std::move(r));
    }
  }
  if constexpr (sizeof...(Rest) == 0) {
    throw py::type_error(std::string("expected ") + what + ", not " + Py_TYPE(h.ptr())->tp_name);
  } else {
    return visit_as<Rest...>(h, std::forward<F>(f), what);
  }
}

// A message class: __eq__, __hash__ = None and __repr__ = describe(self).
template <class T, class Describe>
py::class_<T> message_class(py::module_& m, const char* name, const char* doc, Describe describe) {
  py::class_<T> cls(m, name, doc);
  add_eq(cls);
  cls.def("__repr__", [describe](const T& self) { return describe(self); });
  return cls;
}

// --------------------------------------------------------- stream decoders

// Traits: using decoder = ...; using message = ...;
//   static py::object to_python(message&&);
//   static std::optional<error> check(const message&)   (UTF-8 of text fields)
//   static std::optional<int> wire_code(errc);
template <class Traits>
class stream_codec {
 public:
  using decoder = typename Traits::decoder;
  using message = typename Traits::message;

  explicit stream_codec(decoder d) : decoder_(std::move(d)) {}

  py::list feed(py::handle data) {
    busy_guard guard(*this);
    std::string joined;  // rest_ + data, when a previous call stopped at an error
    std::string_view in = input_view(data, joined);
    if (in.size() >= release_threshold) {
      // `in` is immutable bytes or our own copy, and busy_ keeps other
      // threads off decoder_ and out_: safe without the GIL.
      py::gil_scoped_release nogil;
      run(in, false);
    } else {
      run(in, false);
    }
    return deliver();
  }

  py::list finish() {
    busy_guard guard(*this);
    std::string rest = std::move(rest_);
    rest_.clear();
    std::string_view in(rest);
    run(in, true);
    return deliver();
  }

  bool failed() const noexcept { return decoder_.failed(); }
  decoder& get() noexcept { return decoder_; }

 private:
  static constexpr std::size_t release_threshold = 64 * 1024;

  struct busy_guard {
    explicit busy_guard(stream_codec& c) : c_(c) {
      if (c_.busy_) {
        throw std::runtime_error("decoder used by two threads at once (use one per thread)");
      }
      c_.busy_ = true;
    }
    ~busy_guard() { c_.busy_ = false; }
    busy_guard(const busy_guard&) = delete;
    busy_guard& operator=(const busy_guard&) = delete;
    stream_codec& c_;
  };

  std::string_view input_view(py::handle data, std::string& joined) {
    std::string_view chunk;
    py::buffer_info info;
    if (PyBytes_Check(data.ptr())) {
      chunk = std::string_view(PyBytes_AS_STRING(data.ptr()),
                               static_cast<std::size_t>(PyBytes_GET_SIZE(data.ptr())));
    } else if (PyObject_CheckBuffer(data.ptr()) && !PyUnicode_Check(data.ptr())) {
      // bytearray / memoryview may change under us once the GIL is released.
      joined = bytes_arg(data, "data");
      if (!rest_.empty()) joined.insert(0, rest_);
      rest_.clear();
      return joined;
    } else {
      throw py::type_error(std::string("feed() takes bytes, not ") +
                           Py_TYPE(data.ptr())->tp_name);
    }
    if (rest_.empty()) return chunk;
    joined = std::move(rest_);
    rest_.clear();
    joined.append(chunk);
    return joined;
  }

  // Decodes messages into out_ until `in` runs out or an error (kept in
  // error_; the rest of `in` after a non-sticky one is kept in rest_).
  void run(std::string_view in, bool at_end) {
    for (;;) {
      const bool finishing = at_end && in.empty();
      auto r = finishing ? decoder_.finish() : decoder_.next(in);
      if (!r) {
        error_ = std::move(r.error());
        break;
      }
      if (!*r) {
        if (finishing || !at_end) break;
        continue;  // the rest is consumed: now the end of the stream
      }
      if (auto bad = Traits::check(**r)) {
        error_ = std::move(*bad);
        break;
      }
      out_.push_back(std::move(**r));
    }
    if (error_ && !decoder_.failed() && !in.empty()) rest_.assign(in);
  }

  py::list deliver() {
    py::list list(out_.size());
    std::size_t i = 0;
    for (auto& m : out_) {
      PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(i++), Traits::to_python(std::move(m)).release().ptr());
    }
    out_.clear();
    if (error_) {
      error e = std::move(*error_);
      error_.reset();
      raise_protocol(e, Traits::wire_code(e.code()), std::move(list));
    }
    return list;
  }

  decoder decoder_;
  std::string rest_;
  std::vector<message> out_;
  std::optional<error> error_;
  bool busy_ = false;
};

// Binds the feed/finish/failed trio on a decoder class.
template <class Traits, class... Extra>
void add_stream_methods(py::class_<stream_codec<Traits>, Extra...>& cls) {
  using codec = stream_codec<Traits>;
  cls.def("feed", &codec::feed, py::arg("data"),
          "Decodes the bytes (any chunk of the stream) and returns the messages completed so\n"
          "far, in order; a partial message is kept for the next call.\n\n"
          "Raises ProtocolError (.code: the wire code a server answers with) at an error;\n"
          "the messages decoded before it in this call are in the exception's .messages.\n"
          "After a framing error the decoder is failed (every later call raises again);\n"
          "after a bad but well-framed message, the next feed() (b\"\" will do) goes on\n"
          "after it.");
  cls.def("finish", &codec::finish,
          "End of the stream: returns the messages it completes (usually none); raises\n"
          "ProtocolError (errc 'truncated') when the stream ends inside a message.");
  cls.def_property_readonly("failed", &codec::failed,
                            "True after a framing error: the stream cannot be decoded further.");
}

// The submodules improto._core.<protocol> (codecs_<protocol>.cpp).
void register_relay(py::module_& parent);
void register_registry(py::module_& parent);
void register_buddy(py::module_& parent);
void register_transfer(py::module_& parent);

}  // namespace improto::python
