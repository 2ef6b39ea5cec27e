// improto._core.buddy: protocol 2 (seed 002), TCP requests and responses,
// UDP SET/GET and the GET reply, and the direct chat.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <pybind11/stl.h>

#include "codecs.hpp"
#include "improto/buddy/codes.hpp"
#include "improto/buddy/decoder.hpp"
#include "improto/buddy/messages.hpp"

namespace improto::python {
namespace {

namespace buddy = improto::buddy;

template <class Variant>
py::object variant_to_python(Variant&& v) {
  return std::visit([](auto&& x) { return new_object(std::move(x)); }, std::move(v));
}

std::optional<error> check_response(const buddy::response& r) {
  if (valid_utf8(r.text)) return std::nullopt;
  return error(errc::malformed_start_line, "the response text is not UTF-8");
}

int code_of(errc c) {
  auto r = buddy::to_wire(c);
  return r ? r->code : 0;
}

std::optional<int> wire_code_of(errc c) {
  auto r = buddy::to_wire(c);
  if (!r) return std::nullopt;
  return r->code;
}

struct request_traits {
  using decoder = buddy::request_decoder;
  using message = buddy::request;
  static py::object to_python(message&& m) { return variant_to_python(std::move(m)); }
  static std::optional<error> check(const message&) { return std::nullopt; }  // ids are ASCII
  static std::optional<int> wire_code(errc c) { return wire_code_of(c); }
};
struct response_traits {
  using decoder = buddy::response_decoder;
  using message = buddy::response;
  static py::object to_python(message&& m) { return new_object(std::move(m)); }
  static std::optional<error> check(const message& m) { return check_response(m); }
  static std::optional<int> wire_code(errc c) { return wire_code_of(c); }
};
struct chat_traits {
  using decoder = buddy::chat_decoder;
  using message = buddy::chat_message;
  static py::object to_python(message&& m) { return variant_to_python(std::move(m)); }
  static std::optional<error> check(const message&) { return std::nullopt; }  // text is bytes
  static std::optional<int> wire_code(errc c) { return wire_code_of(c); }
};

using request_codec = stream_codec<request_traits>;
using response_codec = stream_codec<response_traits>;
using chat_codec = stream_codec<chat_traits>;

template <class T>
T parsed(result<T>&& r) {
  if (!r) raise_protocol(r.error(), wire_code_of(r.error().code()));
  return std::move(*r);
}

template <class T>
py::bytes encode_one(const T& m) {
  std::string out;
  auto r = buddy::serialize(m, out);
  if (!r) raise_protocol(r.error(), std::nullopt);
  return to_bytes(out);
}

constexpr const char* message_names = "an improto.buddy message";

template <class F>
py::object visit_message(py::handle h, F&& f) {
  return visit_as<buddy::register_request, buddy::add_request, buddy::delete_request,
                  buddy::response, buddy::set_request, buddy::get_request, buddy::buddy_list,
                  buddy::chat_hello, buddy::chat_text, buddy::chat_quit, buddy::chat_busy>(
      h, std::forward<F>(f), message_names);
}

std::string describe_any(const buddy::buddy_list& m) { return buddy::describe(m); }
template <class T>
std::string describe_any(const T& m) {
  return buddy::describe(m);
}

template <class T>
py::class_<T> buddy_class(py::module_& m, const char* name, const char* doc) {
  return message_class<T>(m, name, doc, [](const T& v) { return buddy::describe(v); });
}

template <class Codec>
py::class_<Codec> decoder_class(py::module_& m, const char* name, const char* doc) {
  using decoder = typename Codec::decoder;
  py::class_<Codec> c(m, name, doc);
  c.def(py::init([](const py::object& max_line) {
          return Codec(decoder(limits_arg(wire::limits{}, max_line, py::none(), py::none())));
        }),
        py::kw_only(), py::arg("max_line") = py::none());
  add_stream_methods(c);
  return c;
}

}  // namespace

void register_buddy(py::module_& parent) {
  py::module_ m = parent.def_submodule("buddy", "Protocol 2 (buddy list and status).");
  importable(m);

  py::enum_<buddy::presence>(m, "Presence", "A buddy's status: ONLINE (100) or OFFLINE (101).")
      .value("ONLINE", buddy::presence::online)
      .value("OFFLINE", buddy::presence::offline);

  // ------------------------------------------------------------ TCP requests
  {
    auto c = buddy_class<buddy::register_request>(m, "RegisterRequest", "REG userid (TCP).");
    c.def(py::init([](py::handle user) { return buddy::register_request{text_arg(user, "user")}; }),
          py::arg("user") = "");
    text_field(c, "user", &buddy::register_request::user, "The userid.");
  }
  {
    auto c = buddy_class<buddy::add_request>(m, "AddRequest", "ADD userid buddyid (TCP).");
    c.def(py::init([](py::handle user, py::handle b) {
            return buddy::add_request{text_arg(user, "user"), text_arg(b, "buddy")};
          }),
          py::arg("user") = "", py::arg("buddy") = "");
    text_field(c, "user", &buddy::add_request::user, "The userid.");
    text_field(c, "buddy", &buddy::add_request::buddy, "The buddy to add.");
  }
  {
    auto c = buddy_class<buddy::delete_request>(m, "DeleteRequest", "DEL userid buddyid (TCP).");
    c.def(py::init([](py::handle user, py::handle b) {
            return buddy::delete_request{text_arg(user, "user"), text_arg(b, "buddy")};
          }),
          py::arg("user") = "", py::arg("buddy") = "");
    text_field(c, "user", &buddy::delete_request::user, "The userid.");
    text_field(c, "buddy", &buddy::delete_request::buddy, "The buddy to delete.");
  }
  {
    auto c = buddy_class<buddy::response>(
        m, "Response", "A one-line answer: '200 OK', '201 INVALID', '202 NO SUCH USER', ...");
    c.def(py::init([](std::uint16_t code, py::handle text) {
            return buddy::response{code, text_arg(text, "text")};
          }),
          py::arg("code") = 200, py::arg("text") = "OK");
    c.def_readwrite("code", &buddy::response::code, "Three-digit code, 100..999.");
    text_field(c, "text", &buddy::response::text, "The text after the code.");
    c.def_property_readonly("ok", [](const buddy::response& r) { return r.code == 200; },
                            "True for 200.");
  }

  // ------------------------------------------------------------ UDP requests
  {
    auto c = buddy_class<buddy::set_request>(m, "SetRequest", "SET userid status msgport (UDP).");
    c.def(py::init([](py::handle user, buddy::presence status, std::uint16_t msgport) {
            return buddy::set_request{text_arg(user, "user"), status, msgport};
          }),
          py::arg("user") = "", py::arg("status") = buddy::presence::online,
          py::arg("msgport") = 0);
    text_field(c, "user", &buddy::set_request::user, "The userid.");
    c.def_readwrite("status", &buddy::set_request::status, "Presence.ONLINE or OFFLINE.");
    c.def_readwrite("msgport", &buddy::set_request::msgport,
                    "The TCP port chats reach the user on (1..65535 when online).");
  }
  {
    auto c = buddy_class<buddy::get_request>(m, "GetRequest", "GET userid (UDP).");
    c.def(py::init([](py::handle user) { return buddy::get_request{text_arg(user, "user")}; }),
          py::arg("user") = "");
    text_field(c, "user", &buddy::get_request::user, "The userid.");
  }
  {
    py::class_<buddy::buddy_entry> c(m, "BuddyEntry", "One line of a GET reply: buddyid status ip port.");
    add_eq(c);
    c.def(py::init([](py::handle user, buddy::presence status, py::handle ip, std::uint16_t port) {
            return buddy::buddy_entry{text_arg(user, "user"), status, text_arg(ip, "ip"), port};
          }),
          py::arg("user") = "", py::arg("status") = buddy::presence::offline,
          py::arg("ip") = "0.0.0.0", py::arg("port") = 0);
    text_field(c, "user", &buddy::buddy_entry::user, "The buddy's userid.");
    c.def_readwrite("status", &buddy::buddy_entry::status, "Presence.ONLINE or OFFLINE.");
    text_field(c, "ip", &buddy::buddy_entry::ip, "IP address the buddy chats from.");
    c.def_readwrite("port", &buddy::buddy_entry::port, "The buddy's msgport.");
    c.def("__repr__", [](const buddy::buddy_entry& e) {
      return buddy::describe(buddy::buddy_list{{e}});
    });
  }
  {
    auto c = buddy_class<buddy::buddy_list>(m, "BuddyList", "A GET reply: one line per buddy.");
    c.def(py::init([](std::vector<buddy::buddy_entry> b) { return buddy::buddy_list{std::move(b)}; }),
          py::arg("buddies") = std::vector<buddy::buddy_entry>());
    c.def_readwrite("buddies", &buddy::buddy_list::buddies,
                    "list[BuddyEntry] (a copy: assign a new list to change it).");
  }

  // ------------------------------------------------------------------- chat
  {
    auto c = buddy_class<buddy::chat_hello>(m, "ChatHello", "CHAT userid: the caller's first line.");
    c.def(py::init([](py::handle user) { return buddy::chat_hello{text_arg(user, "user")}; }),
          py::arg("user") = "");
    text_field(c, "user", &buddy::chat_hello::user, "The caller's userid.");
  }
  {
    auto c = buddy_class<buddy::chat_text>(m, "ChatText", "One chat line (bytes, without its line end).");
    c.def(py::init([](py::handle line) { return buddy::chat_text{bytes_arg(line, "line")}; }),
          py::arg("line") = py::bytes());
    bytes_field(c, "line", &buddy::chat_text::line, "The text (bytes).");
  }
  {
    auto c = buddy_class<buddy::chat_quit>(m, "ChatQuit", "q: ends the chat.");
    c.def(py::init([] { return buddy::chat_quit{}; }));
  }
  {
    auto c = buddy_class<buddy::chat_busy>(m, "ChatBusy", "BUSY: the callee refuses, then closes.");
    c.def(py::init([] { return buddy::chat_busy{}; }));
  }

  // --------------------------------------------------------------- decoders
  decoder_class<request_codec>(
      m, "RequestDecoder",
      "Incremental decoder of TCP requests (REG/ADD/DEL lines; a server's view).\n"
      "A bad line raises ProtocolError (.code 201) and decoding goes on with the next.");
  decoder_class<response_codec>(m, "ResponseDecoder",
                                "Incremental decoder of TCP responses ('200 OK' lines).");
  auto chat = decoder_class<chat_codec>(
      m, "ChatDecoder",
      "Incremental decoder of either direction of a chat: CHAT/BUSY first, text lines, q.");
  chat.def_property_readonly(
      "phase",
      [](chat_codec& c) {
        switch (c.get().current_phase()) {
          case buddy::chat_decoder::phase::opening: return "opening";
          case buddy::chat_decoder::phase::talking: return "talking";
          case buddy::chat_decoder::phase::ended: return "ended";
        }
        return "ended";
      },
      "'opening' (nothing decoded yet), 'talking' or 'ended' (after q or BUSY).");

  // ------------------------------------------------------------- functions
  m.def(
      "parse_request_line",
      [](py::handle line) -> py::object {
        return variant_to_python(parsed(buddy::parse_request_line(bytes_arg(line, "line"))));
      },
      py::arg("line"), "One request line (without its line end).");
  m.def(
      "parse_response_line",
      [](py::handle line) {
        auto r = parsed(buddy::parse_response_line(bytes_arg(line, "line")));
        if (auto bad = check_response(r)) raise_protocol(*bad, wire_code_of(bad->code()));
        return r;
      },
      py::arg("line"), "One response line (without its line end).");
  m.def(
      "parse_udp_request",
      [](py::handle d) -> py::object {
        return variant_to_python(parsed(buddy::parse_udp_request(bytes_arg(d, "datagram"))));
      },
      py::arg("datagram"), "A SET or GET datagram: SetRequest or GetRequest.");
  m.def(
      "parse_status_reply",
      [](py::handle d) -> py::object {
        auto r = parsed(buddy::parse_status_reply(bytes_arg(d, "datagram")));
        if (auto* resp = std::get_if<buddy::response>(&r)) {
          if (auto bad = check_response(*resp)) raise_protocol(*bad, wire_code_of(bad->code()));
        }
        return variant_to_python(std::move(r));
      },
      py::arg("datagram"), "A GET reply datagram: BuddyList, or Response for an error line.");
  m.def(
      "udp_verb_of",
      [](py::handle d) -> py::object {
        switch (buddy::udp_verb_of(bytes_arg(d, "datagram"))) {
          case buddy::udp_verb::set: return py::str("SET");
          case buddy::udp_verb::get: return py::str("GET");
          case buddy::udp_verb::none: break;
        }
        return py::none();
      },
      py::arg("datagram"), "'SET', 'GET' or None: the verb a datagram starts with.");
  m.def(
      "encode", [](py::handle msg) { return visit_message(msg, [](const auto& v) { return encode_one(v); }); },
      py::arg("msg"),
      "The wire bytes of a message (UDP requests without a line end). Raises\n"
      "ProtocolError for one its peer would reject or misread (bad userid, text with a\n"
      "line end, a ChatText 'q', an online SET without msgport, ...).");
  m.def(
      "describe",
      [](py::handle msg) { return visit_message(msg, [](const auto& v) { return describe_any(v); }); },
      py::arg("msg"), "The canonical one-line text of a message (the same as repr()).");
  m.def("valid_user", &buddy::valid_user, py::arg("userid"),
        "True for a userid: 1 to 32 characters of A-Z a-z 0-9 _ . -");
  m.def(
      "error_from_response",
      [](const buddy::response& r) -> py::object {
        auto ok = buddy::from_wire(r);
        if (ok) return py::none();
        try {
          raise_protocol(ok.error(), r.code);
        } catch (py::error_already_set& e) {
          return e.value();
        }
      },
      py::arg("response"),
      "The exception a client raises for a response (not raised), None for 200:\n"
      "201 ProtocolError, 202 NotFoundError, 203 NameTakenError, with .code.");
  m.def(
      "code_for",
      [](const std::string& errc_name) -> py::object {
        for (int i = 1; i <= static_cast<int>(errc::hash_mismatch); ++i) {
          if (name(static_cast<errc>(i)) == errc_name) {
            int c = code_of(static_cast<errc>(i));
            return c ? py::object(py::int_(c)) : py::object(py::none());
          }
        }
        throw py::value_error("no errc named '" + errc_name + "'");
      },
      py::arg("errc"), "The response code a server answers an error (by errc name) with, or None.");
  m.attr("DEFAULT_TCP_PORT") = buddy::default_tcp_port;
  m.attr("DEFAULT_UDP_PORT") = buddy::default_udp_port;
  m.attr("MAX_DATAGRAM") = buddy::max_datagram;
}

}  // namespace improto::python
