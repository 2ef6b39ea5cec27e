#include "errors.hpp"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace improto::python {
namespace {

// Builds the exception with improto._errors._from_core, so that the class
// hierarchy and its docstrings live in Python and cannot drift from here.
void set_python_error(const raised& e) {
  py::object code = e.wire_code() ? py::object(py::int_(*e.wire_code())) : py::object(py::none());
  py::object exc = py::module_::import("improto._errors")
                       .attr("_from_core")(std::string(name(e.err().code())), e.err().message(),
                                           e.err().detail(), code);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
}

}  // namespace

void register_errors(py::module_& m) {
  py::dict table;
  // Every errc up to the first value error.cpp does not name, so a new one
  // reaches Python (tests/python/test_errors.py checks each has a class).
  for (int i = 1; name(static_cast<errc>(i)) != "unknown"; ++i) {
    auto code = static_cast<errc>(i);
    table[py::str(std::string(name(code)))] = py::str(std::string(describe(code)));
  }
  m.attr("ERRC") = table;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const raised& e) {
      try {
        set_python_error(e);
      } catch (py::error_already_set& failed) {
        failed.restore();  // e.g. improto._errors not importable: report that
      }
    }
  });

  m.def(
      "_raise",
      [](const std::string& errc_name, std::string detail, std::optional<int> wire_code) {
        for (int i = 1; name(static_cast<errc>(i)) != "unknown"; ++i) {
          auto code = static_cast<errc>(i);
          if (name(code) == errc_name) throw raised(error(code, std::move(detail)), wire_code);
        }
        throw py::value_error("no errc named '" + errc_name + "'");
      },
      py::arg("errc"), py::arg("detail") = "", py::arg("code") = py::none(),
      "Raises the exception the bindings raise for this errc (for tests of the mapping).");
}

}  // namespace improto::python
