// improto._core.transfer: protocol 4, UDP part (the datagrams of a file
// download).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "codecs.hpp"
#include "improto/transfer/codes.hpp"
#include "improto/transfer/decoder.hpp"
#include "improto/transfer/messages.hpp"

namespace improto::python {
namespace {

namespace transfer = improto::transfer;

// transfer::data views its payload; the Python object owns it.
struct data_msg {
  transfer::header h;
  std::uint64_t offset = 0;
  std::string payload;
  bool operator==(const data_msg&) const = default;
  transfer::data view() const { return {h, offset, payload}; }
};

transfer::datagram as_datagram(const data_msg& d) { return d.view(); }
transfer::datagram as_datagram(const transfer::ack& d) { return d; }
transfer::datagram as_datagram(const transfer::fin& d) { return d; }
transfer::datagram as_datagram(const transfer::abort& d) { return d; }

template <class F>
py::object visit_datagram(py::handle h, F&& f) {
  return visit_as<data_msg, transfer::ack, transfer::fin, transfer::abort>(
      h, [&f](const auto& v) { return f(as_datagram(v)); }, "an improto.transfer datagram");
}

std::optional<int> reason_code(errc c) { return static_cast<int>(transfer::to_wire(c)); }

template <class T>
py::class_<T> datagram_class(py::module_& m, const char* name, const char* doc) {
  auto c = message_class<T>(m, name, doc,
                            [](const T& v) { return transfer::describe(as_datagram(v)); });
  c.def_property(
      "id", [](const T& v) { return v.h.id; }, [](T& v, std::uint32_t id) { v.h.id = id; },
      "The transfer id (from TRANSFER on TCP), 1..2**32-1.");
  c.def_property(
      "key", [](const T& v) { return v.h.key; }, [](T& v, std::uint64_t key) { v.h.key = key; },
      "The per-transfer secret (non-zero).");
  c.def_readwrite("h", &T::h, "The Header (id, key).");
  return c;
}

std::vector<transfer::byte_range> ranges_arg(py::handle list) {
  std::vector<transfer::byte_range> out;
  for (py::handle item : py::iter(list)) {
    auto pair = py::reinterpret_borrow<py::sequence>(item);
    if (!PySequence_Check(item.ptr()) || pair.size() != 2) {
      throw py::type_error("sack: expected (begin, end) pairs of int");
    }
    out.push_back({pair[0].cast<std::uint64_t>(), pair[1].cast<std::uint64_t>()});
  }
  return out;
}

}  // namespace

void register_transfer(py::module_& parent) {
  py::module_ m = parent.def_submodule("transfer", "Protocol 4, UDP part (file transfer datagrams).");
  importable(m);

  py::enum_<transfer::abort_reason>(m, "AbortReason", "Why an ABORT ended a transfer.")
      .value("CANCELLED", transfer::abort_reason::cancelled)
      .value("IO_ERROR", transfer::abort_reason::io_error)
      .value("PROTOCOL", transfer::abort_reason::protocol);

  {
    py::class_<transfer::header> c(m, "Header", "The 14-byte header's id and key.");
    add_eq(c);
    c.def(py::init([](std::uint32_t id, std::uint64_t key) { return transfer::header{id, key}; }),
          py::arg("id") = 0, py::arg("key") = 0);
    c.def_readwrite("id", &transfer::header::id, "The transfer id.");
    c.def_readwrite("key", &transfer::header::key, "The per-transfer secret.");
    c.def("__repr__", [](const transfer::header& h) {
      return "Header(id=" + std::to_string(h.id) + ", key=" + std::to_string(h.key) + ")";
    });
  }
  {
    auto c = datagram_class<data_msg>(m, "Data", "DATA (server -> client): bytes of the file at offset.");
    c.def(py::init([](std::uint32_t id, std::uint64_t key, std::uint64_t offset, py::handle payload) {
            return data_msg{{id, key}, offset, bytes_arg(payload, "payload")};
          }),
          py::arg("id") = 0, py::arg("key") = 0, py::arg("offset") = 0,
          py::arg("payload") = py::bytes());
    c.def_readwrite("offset", &data_msg::offset, "File offset of the payload's first byte.");
    bytes_field(c, "payload", &data_msg::payload, "The bytes (1 or more).");
  }
  {
    auto c = datagram_class<transfer::ack>(
        m, "Ack", "ACK (client -> server): cumulative ack, window, delay, fin flag, SACK ranges.");
    c.def(py::init([](std::uint32_t id, std::uint64_t key, std::uint64_t cumulative,
                      std::uint32_t window, std::uint32_t delay_us, bool fin, py::handle sack) {
            return transfer::ack{{id, key}, cumulative, window, delay_us, fin, ranges_arg(sack)};
          }),
          py::arg("id") = 0, py::arg("key") = 0, py::arg("cumulative") = 0, py::arg("window") = 0,
          py::arg("delay_us") = 0, py::arg("fin") = false, py::arg("sack") = py::list());
    c.def_readwrite("cumulative", &transfer::ack::cumulative, "Every byte before it was received.");
    c.def_readwrite("window", &transfer::ack::window, "Bytes accepted from cumulative on.");
    c.def_readwrite("delay_us", &transfer::ack::delay_us, "How long the ACK was held back (µs).");
    c.def_readwrite("fin", &transfer::ack::fin, "The receiver has the whole file and the FIN.");
    c.def_property(
        "sack",
        [](const transfer::ack& a) {
          py::list out;
          for (const auto& r : a.sack) out.append(py::make_tuple(r.begin, r.end));
          return out;
        },
        [](transfer::ack& a, py::handle v) { a.sack = ranges_arg(v); },
        "Selective acks: [(begin, end), ...] file offsets, ascending, above cumulative.");
  }
  {
    auto c = datagram_class<transfer::fin>(m, "Fin", "FIN (server -> client): the file's end and last byte.");
    c.def(py::init([](std::uint32_t id, std::uint64_t key, std::uint64_t end, std::uint8_t last) {
            return transfer::fin{{id, key}, end, last};
          }),
          py::arg("id") = 0, py::arg("key") = 0, py::arg("end") = 0, py::arg("last_byte") = 0);
    c.def_readwrite("end", &transfer::fin::end, "The file size.");
    c.def_readwrite("last_byte", &transfer::fin::last_byte, "Value of the last byte (0 if empty).");
  }
  {
    auto c = datagram_class<transfer::abort>(m, "Abort", "ABORT (either way): the transfer is over.");
    c.def(py::init([](std::uint32_t id, std::uint64_t key, transfer::abort_reason reason) {
            return transfer::abort{{id, key}, reason};
          }),
          py::arg("id") = 0, py::arg("key") = 0,
          py::arg("reason") = transfer::abort_reason::cancelled);
    c.def_readwrite("reason", &transfer::abort::reason, "An AbortReason.");
  }

  m.def(
      "parse_datagram",
      [](py::handle bytes) -> py::object {
        std::string in = bytes_arg(bytes, "datagram");
        auto r = transfer::parse_datagram(in);
        if (!r) raise_protocol(r.error(), reason_code(r.error().code()));
        return std::visit(
            [](auto&& d) -> py::object {
              using T = std::decay_t<decltype(d)>;
              if constexpr (std::is_same_v<T, transfer::data>) {
                return py::cast(data_msg{d.h, d.offset, std::string(d.payload)});
              } else {
                return py::cast(std::move(d));
              }
            },
            std::move(*r));
      },
      py::arg("datagram"), "Parses one datagram: Data, Ack, Fin or Abort.");
  m.def(
      "peek_header",
      [](py::handle bytes) -> py::object {
        auto h = transfer::peek_header(bytes_arg(bytes, "datagram"));
        return h ? py::cast(*h) : py::object(py::none());
      },
      py::arg("datagram"), "The Header of a datagram, or None (too short, other version).");
  m.def(
      "encode",
      [](py::handle msg) {
        return visit_datagram(msg, [](const transfer::datagram& d) {
          auto r = transfer::serialize(d);
          if (!r) raise_protocol(r.error(), std::nullopt);
          return to_bytes(*r);
        });
      },
      py::arg("msg"),
      "The bytes of a datagram. Raises ProtocolError for one the peer would reject\n"
      "(id or key 0, empty payload, bad SACK ranges, ...; 'datagram_too_large').");
  m.def(
      "describe",
      [](py::handle msg) {
        return visit_datagram(msg, [](const transfer::datagram& d) { return transfer::describe(d); });
      },
      py::arg("msg"), "The canonical one-line text of a datagram (the same as repr()).");
  m.def(
      "error_from_abort",
      [](transfer::abort_reason r) -> py::object {
        try {
          raise_protocol(transfer::from_wire(r), static_cast<int>(r));
        } catch (py::error_already_set& e) {
          return e.value();
        }
      },
      py::arg("reason"), "The exception the side that receives an ABORT reports (not raised).");
  m.attr("VERSION") = transfer::version;
  m.attr("HEADER_SIZE") = transfer::header_size;
  m.attr("DATA_HEADER_SIZE") = transfer::data_header_size;
  m.attr("MAX_DATAGRAM") = transfer::max_datagram;
  m.attr("DEFAULT_DATAGRAM") = transfer::default_datagram;
  m.attr("MAX_OFFSET") = transfer::max_offset;
  m.attr("MAX_SACK_RANGES") = transfer::max_sack_ranges;
}

}  // namespace improto::python
