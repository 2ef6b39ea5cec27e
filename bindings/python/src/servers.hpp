#pragma once

#include <pybind11/pybind11.h>

namespace improto::python {

// _core._RegistryServer, _BuddyServer, _RelayServer: the C++ server cores,
// each on its own io_context and thread (see improto/servers.py).
void register_servers(pybind11::module_& m);

// _core._Download: the UDP side of a relay client's download (downloads.cpp).
void register_downloads(pybind11::module_& m);

}  // namespace improto::python
