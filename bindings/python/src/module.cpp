// improto._core: the C++ library as seen from Python. The public API is the
// pure-Python package `improto` around it; names here that start with `_`
// are its building blocks.

#include <pybind11/pybind11.h>

#include "codecs.hpp"
#include "errors.hpp"
#include "servers.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "Native core of the improto package (libimproto). Use the `improto` package, "
      "not this module.";
  improto::python::register_errors(m);
  improto::python::register_servers(m);
  improto::python::register_downloads(m);
  improto::python::register_registry(m);
  improto::python::register_buddy(m);
  improto::python::register_relay(m);
  improto::python::register_transfer(m);
}
