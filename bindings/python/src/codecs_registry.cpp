// improto._core.registry: protocol 1 (seed 001), the HTTP/1.1 subset, its
// payloads and the peer datagrams.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/stl.h>

#include "codecs.hpp"
#include "improto/registry/codes.hpp"
#include "improto/registry/decoder.hpp"
#include "improto/registry/messages.hpp"

namespace improto::python {
namespace {

namespace registry = improto::registry;

std::optional<error> check_http_text(const std::string& first_name, const std::string& first,
                                      const registry::fields& headers) {
  if (!valid_utf8(first)) return error(errc::invalid_argument, first_name + " is not UTF-8 text");
  for (const auto& f : headers) {
    if (!valid_utf8(f.name) || !valid_utf8(f.value)) {
      return error(errc::malformed_header, "a header is not UTF-8 text");
    }
  }
  return std::nullopt;
}

struct request_traits {
  using decoder = registry::request_decoder;
  using message = registry::request;
  static py::object to_python(message&& m) { return new_object(std::move(m)); }
  static std::optional<error> check(const message& m) {
    // method is a token (ASCII), checked by the decoder
    return check_http_text("the target", m.target, m.headers);
  }
  static std::optional<int> wire_code(errc c) { return registry::to_wire(c); }
};

struct response_traits {
  using decoder = registry::response_decoder;
  using message = registry::response;
  static py::object to_python(message&& m) { return new_object(std::move(m)); }
  static std::optional<error> check(const message& m) {
    return check_http_text("the reason", m.reason, m.headers);
  }
  static std::optional<int> wire_code(errc c) { return registry::to_wire(c); }
};

using request_codec = stream_codec<request_traits>;
using response_codec = stream_codec<response_traits>;

registry::fields headers_arg(py::handle list) {
  registry::fields out;
  for (py::handle item : py::iter(list)) {
    auto pair = py::reinterpret_borrow<py::sequence>(item);
    if (!PySequence_Check(item.ptr()) || PyUnicode_Check(item.ptr()) || pair.size() != 2) {
      throw py::type_error("headers: expected (name, value) pairs of str");
    }
    out.push_back({text_arg(pair[0], "header name"), text_arg(pair[1], "header value")});
  }
  return out;
}

py::list headers_list(const registry::fields& headers) {
  py::list out(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) {
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i),
                    py::make_tuple(to_str(headers[i].name), to_str(headers[i].value)).release().ptr());
  }
  return out;
}

template <class T>
void http_common(py::class_<T>& c) {
  c.def_readwrite("version", &T::version, "Minor version of HTTP/1.x: 0 or 1.");
  fast_property<T>(
      c, "headers", [](const T& self) -> py::object { return headers_list(self.headers); },
      [](T& self, py::handle v) { self.headers = headers_arg(v); },
      "Header fields in wire order, as (name, value) pairs of str (a copy: assign a new\n"
      "list to change them).");
  bytes_field(c, "body", &T::body, "The body (bytes).");
  c.def(
      "header",
      [](const T& self, std::string_view name) -> py::object {
        auto v = self.header(name);
        return v ? py::object(to_str(*v)) : py::object(py::none());
      },
      py::arg("name"), "The first value of a header (any case), or None.");
  c.def_property_readonly("keep_alive", &T::keep_alive,
                          "True when the connection stays open after this message.");
}

template <class T>
py::bytes encode_with(const T& value) {
  std::string out;
  auto r = registry::serialize(value, out);
  if (!r) raise_protocol(r.error(), std::nullopt);
  return to_bytes(out);
}

template <class T>
T parsed(result<T>&& r) {
  if (!r) raise_protocol(r.error(), registry::to_wire(r.error().code()));
  return std::move(*r);
}

std::string bytes_view_arg(py::handle data) { return bytes_arg(data, "data"); }

constexpr const char* message_names = "an improto.registry message";

}  // namespace

void register_registry(py::module_& parent) {
  py::module_ m = parent.def_submodule("registry", "Protocol 1 (registry over HTTP/1.1).");
  importable(m);

  // ------------------------------------------------------------------- HTTP
  {
    auto c = message_class<registry::request>(
        m, "Request", "An HTTP/1.1 request: method, target, version, headers, body.",
        [](const registry::request& r) { return registry::describe(r); });
    c.def(py::init([](py::handle method, py::handle target, int version, py::handle headers,
                      py::handle body) {
            return registry::request{text_arg(method, "method"), text_arg(target, "target"),
                                     version, headers_arg(headers), bytes_arg(body, "body")};
          }),
          py::arg("method") = "GET", py::arg("target") = "/", py::arg("version") = 1,
          py::arg("headers") = py::list(), py::arg("body") = py::bytes());
    text_field(c, "method", &registry::request::method, "The method, e.g. 'POST'.");
    text_field(c, "target", &registry::request::target, "The target, e.g. '/userlist.txt'.");
    http_common(c);
  }
  {
    auto c = message_class<registry::response>(
        m, "Response", "An HTTP/1.1 response: version, status, reason, headers, body.",
        [](const registry::response& r) { return registry::describe(r); });
    c.def(py::init([](int version, int status, py::handle reason, py::handle headers,
                      py::handle body) {
            return registry::response{version, status, text_arg(reason, "reason"),
                                      headers_arg(headers), bytes_arg(body, "body")};
          }),
          py::arg("version") = 1, py::arg("status") = 200, py::arg("reason") = "",
          py::arg("headers") = py::list(), py::arg("body") = py::bytes());
    c.def_readwrite("status", &registry::response::status, "Status code, 100..999.");
    text_field(c, "reason", &registry::response::reason, "Reason phrase (may be empty).");
    http_common(c);
  }

  // --------------------------------------------------------------- payloads
  py::enum_<registry::command_kind>(m, "CommandKind", "The verb of a POST body.")
      .value("REGISTER", registry::command_kind::register_)
      .value("LOGOUT", registry::command_kind::logout);
  {
    auto c = message_class<registry::entry>(
        m, "Entry", "name@host:port: a user and the address its peer listens on.",
        [](const registry::entry& e) { return registry::describe(e); });
    c.def(py::init([](py::handle user, py::handle host, std::uint16_t port) {
            return registry::entry{text_arg(user, "user"), text_arg(host, "host"), port};
          }),
          py::arg("user") = "", py::arg("host") = "", py::arg("port") = 0);
    text_field(c, "user", &registry::entry::user, "The user name (the wire's 'name').");
    text_field(c, "host", &registry::entry::host, "IPv4, IPv6 (no brackets) or host name.");
    c.def_readwrite("port", &registry::entry::port, "UDP port, 1..65535.");
    c.def("__str__", [](const registry::entry& e) { return registry::to_string(e); });
  }
  {
    auto c = message_class<registry::command>(
        m, "Command", "A POST body: REGISTER entry or LOGOUT entry.",
        [](const registry::command& x) { return registry::describe(x); });
    c.def(py::init([](registry::command_kind kind, const registry::entry& entry) {
            return registry::command{kind, entry};
          }),
          py::arg("kind") = registry::command_kind::register_,
          py::arg("entry") = registry::entry{});
    c.def_readwrite("kind", &registry::command::kind, "CommandKind.REGISTER or LOGOUT.");
    c.def_readwrite("entry", &registry::command::entry, "The Entry it registers or logs out.");
  }
  {
    auto c = message_class<registry::user_list>(
        m, "UserList", "The body of GET /userlist.txt: entries, each followed by a comma.",
        [](const registry::user_list& l) { return registry::describe(l); });
    c.def(py::init([](std::vector<registry::entry> entries) {
            return registry::user_list{std::move(entries)};
          }),
          py::arg("entries") = std::vector<registry::entry>());
    c.def_readwrite("entries", &registry::user_list::entries,
                    "list[Entry] (a copy: assign a new list to change it).");
  }
  {
    auto c = message_class<registry::peer_message>(
        m, "PeerMessage", "One UDP datagram between peers: 'sender: text'.",
        [](const registry::peer_message& p) { return registry::describe(p); });
    c.def(py::init([](py::handle sender, py::handle text) {
            return registry::peer_message{text_arg(sender, "sender"), bytes_arg(text, "text")};
          }),
          py::arg("sender") = "", py::arg("text") = py::bytes());
    text_field(c, "sender", &registry::peer_message::sender, "The sender's user name.");
    bytes_field(c, "text", &registry::peer_message::text, "The text (bytes; UTF-8 by convention).");
  }

  // --------------------------------------------------------------- decoders
  const char* limits_doc =
      "Limits: max_line (8192), max_headers (64), max_body (65536 for requests, 16 MiB\n"
      "for responses) bytes. Every HTTP error is a framing error: the decoder fails.";
  py::class_<request_codec> rq(m, "RequestDecoder",
                               (std::string("Incremental decoder of HTTP requests (a server's view).\n") +
                                limits_doc).c_str());
  rq.def(py::init([](const py::object& max_line, const py::object& max_headers,
                     const py::object& max_body) {
           return request_codec(registry::request_decoder(limits_arg(
               registry::default_request_limits, max_line, max_headers, max_body)));
         }),
         py::kw_only(), py::arg("max_line") = py::none(), py::arg("max_headers") = py::none(),
         py::arg("max_body") = py::none());
  add_stream_methods(rq);
  py::class_<response_codec> rs(m, "ResponseDecoder",
                                (std::string("Incremental decoder of HTTP responses (a client's view).\n") +
                                 limits_doc).c_str());
  rs.def(py::init([](const py::object& max_line, const py::object& max_headers,
                     const py::object& max_body) {
           return response_codec(registry::response_decoder(limits_arg(
               registry::default_response_limits, max_line, max_headers, max_body)));
         }),
         py::kw_only(), py::arg("max_line") = py::none(), py::arg("max_headers") = py::none(),
         py::arg("max_body") = py::none());
  add_stream_methods(rs);

  // ------------------------------------------------------------- functions
  m.def(
      "parse_entry",
      [](py::handle data) { return parsed(registry::parse_entry(bytes_view_arg(data))); },
      py::arg("data"), "Parses 'name@host:port' (bytes or str) into an Entry.");
  m.def(
      "parse_command",
      [](py::handle data) { return parsed(registry::parse_command(bytes_view_arg(data))); },
      py::arg("body"), "Parses a POST body ('REGISTER name@ip:port' / 'LOGOUT ...') into a Command.");
  m.def(
      "parse_list",
      [](py::handle data) { return parsed(registry::parse_list(bytes_view_arg(data))); },
      py::arg("body"), "Parses a user list body ('a@h:1,b@h:2,') into a UserList.");
  auto peer = [](py::handle data) {
    return parsed(registry::parse_peer_message(bytes_view_arg(data)));
  };
  m.def("parse_peer_message", peer, py::arg("datagram"),
        "Parses a peer datagram ('sender: text') into a PeerMessage.");
  m.def("parse_peer_datagram", peer, py::arg("datagram"), "Same as parse_peer_message().");

  m.def(
      "encode",
      [](py::handle msg) -> py::object {
        return visit_as<registry::request, registry::response, registry::entry,
                        registry::command, registry::user_list, registry::peer_message>(
            msg, [](const auto& v) { return encode_with(v); }, message_names);
      },
      py::arg("msg"),
      "The wire bytes of a Request, Response, Entry, Command, UserList or PeerMessage.\n"
      "Raises ProtocolError for a message its peer would reject or misread (e.g. a\n"
      "header value with a line end, a name with a blank).");
  m.def(
      "describe",
      [](py::handle msg) -> py::object {
        return visit_as<registry::request, registry::response, registry::entry,
                        registry::command, registry::user_list, registry::peer_message>(
            msg, [](const auto& v) { return registry::describe(v); }, message_names);
      },
      py::arg("msg"), "The canonical one-line text of a message (the same as repr()).");
  m.def(
      "make_request",
      [](py::handle method, py::handle target, py::handle host, py::handle body) {
        return registry::make_request(text_arg(method, "method"), text_arg(target, "target"),
                                      text_arg(host, "host"), bytes_arg(body, "body"));
      },
      py::arg("method"), py::arg("target"), py::arg("host"), py::arg("body") = py::bytes(),
      "The request a seed-compatible client sends: Host, and for a body Content-Type\n"
      "and Content-Length.");
  m.def(
      "make_response",
      [](int status, py::handle body, bool keep_alive) {
        return registry::make_response(status, bytes_arg(body, "body"), keep_alive);
      },
      py::arg("status"), py::arg("body") = py::bytes(), py::arg("keep_alive") = true,
      "'HTTP/1.1 <status> <reason>' with Content-Length (and Connection: close).");
  m.def("reason_phrase", [](int status) { return std::string(registry::reason_phrase(status)); },
        py::arg("status"), "The standard reason phrase of a status ('Unknown' for others).");
  m.def("status_has_body", &registry::status_has_body, py::arg("status"),
        "False for 1xx, 204 and 304.");
  m.def(
      "valid_user", [](py::handle name) { return registry::valid_user(text_arg(name, "name")); },
      py::arg("name"), "True for a registry user name (1..64 bytes, no ':' '@' ',' or blanks).");
  m.def(
      "error_from_status",
      [](int status) -> py::object {
        auto c = registry::from_wire(status);
        if (!c) return py::none();
        try {
          raise_protocol(error(*c, "the server answered " + std::to_string(status) + " " +
                                       std::string(registry::reason_phrase(status))),
                         status);
        } catch (py::error_already_set& e) {
          return e.value();
        }
      },
      py::arg("status"),
      "The exception a client raises for a final status (not raised), None for 2xx:\n"
      "406 NameTakenError, 404 NotFoundError, ... with .code = status.");
  m.def("status_for", [](const std::string& errc_name) -> py::object {
        for (int i = 1; i <= static_cast<int>(errc::hash_mismatch); ++i) {
          if (name(static_cast<errc>(i)) == errc_name) return py::int_(registry::to_wire(static_cast<errc>(i)));
        }
        throw py::value_error("no errc named '" + errc_name + "'");
      }, py::arg("errc"), "The HTTP status a server answers an error (by errc name) with.");
  m.attr("MAX_DATAGRAM_SIZE") = registry::max_datagram_size;
}

}  // namespace improto::python
