// improto._core.relay: protocol 3 (relay) and the TCP part of protocol 4.

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <pybind11/stl.h>

#include "codecs.hpp"
#include "improto/relay/codes.hpp"
#include "improto/relay/decoder.hpp"
#include "improto/relay/messages.hpp"

namespace improto::python {
namespace {

namespace relay = improto::relay;

struct relay_traits {
  using decoder = relay::decoder;
  using message = relay::message;

  static py::object to_python(message&& m) {
    return std::visit([](auto&& v) { return new_object(std::move(v)); }, std::move(m));
  }

  static std::optional<error> check(const message& m) {
    std::optional<error> bad;
    auto text = [&bad](const char* field, const std::string& s) {
      if (!bad && !valid_utf8(s)) {
        bad = error(errc::invalid_argument, std::string(field) + " is not UTF-8 text");
      }
    };
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, relay::register_request> ||
                        std::is_same_v<T, relay::registered> ||
                        std::is_same_v<T, relay::joined> || std::is_same_v<T, relay::left>) {
            text("user", v.user);
          } else if constexpr (std::is_same_v<T, relay::send> || std::is_same_v<T, relay::sent>) {
            text("recipient", v.to);
          } else if constexpr (std::is_same_v<T, relay::forward> ||
                               std::is_same_v<T, relay::received>) {
            text("sender", v.from);
          } else if constexpr (std::is_same_v<T, relay::error_reply>) {
            text("error text", v.text);
          } else if constexpr (std::is_same_v<T, relay::list_users> ||
                               std::is_same_v<T, relay::list_files>) {
            text("After", v.after);
          } else if constexpr (std::is_same_v<T, relay::user_list>) {
            for (const auto& u : v.users) text("user name", u);
          } else if constexpr (std::is_same_v<T, relay::file_list>) {
            for (const auto& f : v.files) text("file name", f.name);
          } else if constexpr (std::is_same_v<T, relay::download>) {
            text("file name", v.file);
          }
          // transfer's sha256 is checked hex by the decoder.
        },
        m);
    return bad;
  }

  static std::optional<int> wire_code(errc c) { return relay::to_wire(c); }
};

using relay_decoder = stream_codec<relay_traits>;

// The variant alternative `h` holds, or nullopt for a non-message.
template <std::size_t I = 0>
std::optional<relay::message> as_message(py::handle h) {
  if constexpr (I == std::variant_size_v<relay::message>) {
    return std::nullopt;
  } else {
    using T = std::variant_alternative_t<I, relay::message>;
    if (py::isinstance<T>(h)) return relay::message(h.cast<const T&>());
    return as_message<I + 1>(h);
  }
}

relay::message message_arg(py::handle h) {
  if (auto m = as_message(h)) return std::move(*m);
  throw py::type_error(std::string("expected an improto.relay message, not ") +
                       Py_TYPE(h.ptr())->tp_name);
}

template <class T>
py::class_<T> message_class(py::module_& m, const char* name, const char* doc) {
  py::class_<T> cls(m, name, doc);
  add_eq(cls);
  cls.def("__repr__", [](const T& self) { return relay::describe(relay::message(self)); });
  return cls;
}

// Classes with a single `id` (PAUSE 7 ...).
template <class T>
void id_message(py::module_& m, const char* name, const char* doc) {
  auto cls = message_class<T>(m, name, doc);
  cls.def(py::init([](std::uint32_t id) { return T{id}; }), py::arg("id") = 0);
  cls.def_readwrite("id", &T::id, "The transfer id (1..2**32-1), from TRANSFER.");
}

// Classes without fields (SUBSCRIBE PRESENCE ...).
template <class T>
void empty_message(py::module_& m, const char* name, const char* doc) {
  auto cls = message_class<T>(m, name, doc);
  cls.def(py::init([] { return T{}; }));
}

std::vector<std::string> names_arg(py::handle list, const char* field) {
  std::vector<std::string> out;
  for (py::handle item : py::iter(list)) out.push_back(text_arg(item, field));
  return out;
}

}  // namespace

void register_relay(py::module_& parent) {
  py::module_ m = parent.def_submodule("relay", "Protocol 3 (relay) and 4 (messenger, TCP part).");
  importable(m);

  py::enum_<relay::role>(m, "Role", "Which socket of a client: TOSEND (requests) or TORECV (incoming).")
      .value("TO_SEND", relay::role::to_send, "TOSEND: the socket a client sends requests on")
      .value("TO_RECV", relay::role::to_recv, "TORECV: the socket FORWARDs and notices arrive on");
  py::enum_<relay::direction>(m, "Direction", "Which way a byte stream flows.")
      .value("TO_SERVER", relay::direction::to_server,
             "bytes a client sends: REGISTER, SEND, RECEIVED, ERROR, LIST ...")
      .value("TO_CLIENT", relay::direction::to_client,
             "bytes a server sends: REGISTERED, SENT, FORWARD, ERROR, USERS ...");

  // ------------------------------------------------------------ protocol 3
  {
    auto c = message_class<relay::register_request>(
        m, "RegisterRequest", "REGISTER TOSEND alice (client -> server): names one socket.");
    c.def(py::init([](relay::role role, py::handle user) {
            return relay::register_request{role, text_arg(user, "user")};
          }),
          py::arg("role") = relay::role::to_send, py::arg("user") = "");
    c.def_readwrite("role", &relay::register_request::role, "Role of the socket.");
    text_field(c, "user", &relay::register_request::user, "The user name.");
  }
  {
    auto c = message_class<relay::registered>(
        m, "Registered", "REGISTERED TOSEND alice (server -> client): the socket is registered.");
    c.def(py::init([](relay::role role, py::handle user) {
            return relay::registered{role, text_arg(user, "user")};
          }),
          py::arg("role") = relay::role::to_send, py::arg("user") = "");
    c.def_readwrite("role", &relay::registered::role, "Role of the socket.");
    text_field(c, "user", &relay::registered::user, "The user name.");
  }
  {
    auto c = message_class<relay::send>(
        m, "Send", "SEND bob + body (client -> server); to='ALL' broadcasts.");
    c.def(py::init([](py::handle to, py::handle body) {
            return relay::send{text_arg(to, "to"), bytes_arg(body, "body")};
          }),
          py::arg("to") = "", py::arg("body") = py::bytes());
    text_field(c, "to", &relay::send::to, "Recipient user name, or 'ALL'.");
    bytes_field(c, "body", &relay::send::body, "The message (bytes).");
  }
  {
    auto c = message_class<relay::sent>(
        m, "Sent", "SENT bob (server -> client): the message was delivered.");
    c.def(py::init([](py::handle to) { return relay::sent{text_arg(to, "to")}; }),
          py::arg("to") = "");
    text_field(c, "to", &relay::sent::to, "The recipient of the delivered message.");
  }
  {
    auto c = message_class<relay::forward>(
        m, "Forward", "FORWARD alice + body (server -> TORECV socket): an incoming message.");
    c.def(py::init([](py::handle from, py::handle body) {
            return relay::forward{text_arg(from, "from_"), bytes_arg(body, "body")};
          }),
          py::arg("from_") = "", py::arg("body") = py::bytes());
    text_field(c, "from_", &relay::forward::from, "Sender's user name (C++ `from`).");
    bytes_field(c, "body", &relay::forward::body, "The message (bytes).");
  }
  {
    auto c = message_class<relay::received>(
        m, "Received", "RECEIVED alice (TORECV socket -> server): the FORWARD was received.");
    c.def(py::init([](py::handle from) { return relay::received{text_arg(from, "from_")}; }),
          py::arg("from_") = "");
    text_field(c, "from_", &relay::received::from, "Sender of the acknowledged FORWARD.");
  }
  {
    auto c = message_class<relay::error_reply>(
        m, "ErrorReply", "ERROR 102 Unable to send (either direction); codes in CODES.");
    c.def(py::init([](int code, py::handle text) {
            return relay::error_reply{code, text_arg(text, "text")};
          }),
          py::arg("code") = 0, py::arg("text") = "");
    c.def_readwrite("code", &relay::error_reply::code, "Three-digit code, 100..999.");
    text_field(c, "text", &relay::error_reply::text, "Human text, e.g. 'Unable to send'.");
  }

  // ------------------------------------------------------------ protocol 4
  {
    auto c = message_class<relay::list_users>(
        m, "ListUsers", "LIST USERS (After: name for the next page).");
    c.def(py::init([](py::handle after) { return relay::list_users{text_arg(after, "after")}; }),
          py::arg("after") = "");
    text_field(c, "after", &relay::list_users::after, "Page after this name; '' from the start.");
  }
  {
    auto c = message_class<relay::user_list>(
        m, "UserList", "USERS + body of names (server -> client); more=True when the page is cut.");
    c.def(py::init([](py::handle users, bool more) {
            return relay::user_list{names_arg(users, "users"), more};
          }),
          py::arg("users") = py::list(), py::arg("more") = false);
    fast_property<relay::user_list>(
        c, "users",
        [](const relay::user_list& self) -> py::object {
          py::list out(self.users.size());
          for (std::size_t i = 0; i < self.users.size(); ++i) {
            PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), to_str(self.users[i]).release().ptr());
          }
          py::object o = std::move(out);
          return o;
        },
        [](relay::user_list& self, py::handle v) { self.users = names_arg(v, "users"); },
        "The names (list[str]; a copy: assign a new list to change it).");
    c.def_readwrite("more", &relay::user_list::more, "True when another page follows.");
  }
  {
    auto c = message_class<relay::list_files>(
        m, "ListFiles", "LIST FILES (After: name for the next page).");
    c.def(py::init([](py::handle after) { return relay::list_files{text_arg(after, "after")}; }),
          py::arg("after") = "");
    text_field(c, "after", &relay::list_files::after, "Page after this name; '' from the start.");
  }
  {
    py::class_<relay::file_entry> c(m, "FileEntry", "One file of a FILES list: name and size.");
    add_eq(c);
    c.def(py::init([](py::handle name, std::uint64_t size) {
            return relay::file_entry{text_arg(name, "name"), size};
          }),
          py::arg("name") = "", py::arg("size") = 0);
    text_field(c, "name", &relay::file_entry::name, "File name.");
    c.def_readwrite("size", &relay::file_entry::size, "Size in bytes.");
    c.def("__repr__", [](const relay::file_entry& e) {
      return "FileEntry(name=" + py::repr(to_str(e.name)).cast<std::string>() +
             ", size=" + std::to_string(e.size) + ")";
    });
  }
  {
    auto c = message_class<relay::file_list>(
        m, "FileList", "FILES + body of 'size name' lines; more=True when the page is cut.");
    c.def(py::init([](std::vector<relay::file_entry> files, bool more) {
            return relay::file_list{std::move(files), more};
          }),
          py::arg("files") = std::vector<relay::file_entry>(), py::arg("more") = false);
    c.def_readwrite("files", &relay::file_list::files,
                    "The files (list[FileEntry]; a copy: assign a new list to change it).");
    c.def_readwrite("more", &relay::file_list::more, "True when another page follows.");
  }
  empty_message<relay::subscribe>(m, "Subscribe", "SUBSCRIBE PRESENCE: JOINED/LEFT notices on TORECV.");
  empty_message<relay::subscribed>(m, "Subscribed", "SUBSCRIBED PRESENCE: the answer to Subscribe.");
  empty_message<relay::unsubscribe>(m, "Unsubscribe", "UNSUBSCRIBE PRESENCE: no more notices.");
  empty_message<relay::unsubscribed>(m, "Unsubscribed", "UNSUBSCRIBED PRESENCE: the answer to Unsubscribe.");
  {
    auto c = message_class<relay::joined>(m, "Joined", "JOINED bob: a user came online (presence notice).");
    c.def(py::init([](py::handle user) { return relay::joined{text_arg(user, "user")}; }),
          py::arg("user") = "");
    text_field(c, "user", &relay::joined::user, "The user name.");
  }
  {
    auto c = message_class<relay::left>(m, "Left", "LEFT bob: a user went offline (presence notice).");
    c.def(py::init([](py::handle user) { return relay::left{text_arg(user, "user")}; }),
          py::arg("user") = "");
    text_field(c, "user", &relay::left::user, "The user name.");
  }
  {
    auto c = message_class<relay::download>(
        m, "Download", "DOWNLOAD file (Udp-port, Offset): asks the server to send a file over UDP.");
    c.def(py::init([](py::handle file, std::uint16_t udp_port, std::uint64_t offset) {
            return relay::download{text_arg(file, "file"), udp_port, offset};
          }),
          py::arg("file") = "", py::arg("udp_port") = 0, py::arg("offset") = 0);
    text_field(c, "file", &relay::download::file, "File name, as FILES lists it.");
    c.def_readwrite("udp_port", &relay::download::udp_port, "The client's UDP port.");
    c.def_readwrite("offset", &relay::download::offset, "First byte wanted (> 0 resumes).");
  }
  {
    auto c = message_class<relay::transfer>(
        m, "Transfer", "TRANSFER id (Size, Offset, Sha256, Udp-port): the answer to Download.");
    c.def(py::init([](std::uint32_t id, std::uint64_t size, std::uint64_t offset, py::handle sha256,
                      std::uint16_t udp_port) {
            return relay::transfer{id, size, offset, text_arg(sha256, "sha256"), udp_port};
          }),
          py::arg("id") = 0, py::arg("size") = 0, py::arg("offset") = 0, py::arg("sha256") = "",
          py::arg("udp_port") = 0);
    c.def_readwrite("id", &relay::transfer::id, "Names the transfer (PAUSE/RESUME/CANCEL, UDP).");
    c.def_readwrite("size", &relay::transfer::size, "Size of the whole file.");
    c.def_readwrite("offset", &relay::transfer::offset, "First byte the server sends.");
    text_field(c, "sha256", &relay::transfer::sha256, "SHA-256 of the whole file, 64 lowercase hex digits.");
    c.def_readwrite("udp_port", &relay::transfer::udp_port, "The server's UDP port for it.");
  }
  id_message<relay::pause>(m, "Pause", "PAUSE id: stop sending for now (answered by Paused).");
  id_message<relay::resume>(m, "Resume", "RESUME id: go on after Pause (answered by Resumed).");
  id_message<relay::cancel>(m, "Cancel", "CANCEL id: abandon the transfer (answered by Cancelled).");
  id_message<relay::paused>(m, "Paused", "PAUSED id: the answer to Pause.");
  id_message<relay::resumed>(m, "Resumed", "RESUMED id: the answer to Resume.");
  id_message<relay::cancelled>(m, "Cancelled", "CANCELLED id: the answer to Cancel.");

  // ---------------------------------------------------------------- decoder
  py::class_<relay_decoder> dec(
      m, "Decoder",
      "Incremental decoder of one relay byte stream.\n\n"
      "direction: Direction.TO_SERVER for what a client sends (a server's view),\n"
      "Direction.TO_CLIENT for what a server sends (a client's view). Limits: max_line\n"
      "(8192), max_headers (64), max_body (65536) bytes.");
  dec.def(py::init([](relay::direction direction, const py::object& max_line,
                      const py::object& max_headers, const py::object& max_body) {
            return relay_decoder(relay::decoder(
                direction, limits_arg(wire::limits{}, max_line, max_headers, max_body)));
          }),
          py::arg("direction"), py::kw_only(), py::arg("max_line") = py::none(),
          py::arg("max_headers") = py::none(), py::arg("max_body") = py::none());
  add_stream_methods(dec);
  dec.def_property_readonly("direction", [](relay_decoder& d) { return d.get().dir(); },
                            "The direction given on construction.");

  // ------------------------------------------------------------- functions
  m.def(
      "encode",
      [](py::handle msg) {
        auto r = relay::serialize(message_arg(msg));
        if (!r) raise_protocol(r.error(), std::nullopt);
        return to_bytes(*r);
      },
      py::arg("msg"),
      "The wire bytes of a message. Raises ProtocolError (errc 'invalid_argument', or\n"
      "'line_too_long' / 'body_too_large' past the default limits) for a message its\n"
      "peer would reject or misread, e.g. a name with a line end in it.");
  m.def(
      "describe", [](py::handle msg) { return relay::describe(message_arg(msg)); }, py::arg("msg"),
      "The canonical one-line text of a message (the same as repr()).");
  m.def(
      "direction_of", [](py::handle msg) { return relay::direction_of(message_arg(msg)); },
      py::arg("msg"), "The direction a message travels in (ErrorReply: TO_CLIENT).");
  m.def("valid_user", &relay::valid_user, py::arg("name"),
        "True for a relay user name: 1 to 32 letters and digits, and not ALL.");
  m.def("valid_file_name", &relay::valid_file_name, py::arg("name"),
        "True for a file name a server may list and serve.");
  m.def("is_broadcast", &relay::is_broadcast, py::arg("recipient"),
        "True for the broadcast recipient of SEND ALL.");
  m.def(
      "error_reply", [](int code) { return relay::error_for(code); }, py::arg("code"),
      "The ErrorReply a server sends for a code, with its canonical text.");
  m.def("wire_text", [](int code) { return std::string(relay::wire_text(code)); },
        py::arg("code"), "The canonical text of an ERROR code ('' for an unknown code).");
  m.def("closes_connection", &relay::closes_connection, py::arg("code"),
        "True when a server closes the socket after answering this ERROR code (103).");
  m.def(
      "error_from_reply",
      [](const relay::error_reply& reply) -> py::object {
        try {
          raise_protocol(relay::from_wire(reply), reply.code);
        } catch (py::error_already_set& e) {
          return e.value();
        }
      },
      py::arg("reply"),
      "The exception a client raises for an ERROR it received (not raised): a\n"
      "ProtocolError subclass by code (104 NameTakenError, 106/107 NotFoundError, ...)\n"
      "with .code = reply.code.");

  py::dict codes;
  codes["MALFORMED_USERNAME"] = relay::codes::malformed_username;
  codes["NO_USER_REGISTERED"] = relay::codes::no_user_registered;
  codes["UNABLE_TO_SEND"] = relay::codes::unable_to_send;
  codes["HEADER_INCOMPLETE"] = relay::codes::header_incomplete;
  codes["USERNAME_TAKEN"] = relay::codes::username_taken;
  codes["UNKNOWN_COMMAND"] = relay::codes::unknown_command;
  codes["NO_SUCH_FILE"] = relay::codes::no_such_file;
  codes["NO_SUCH_TRANSFER"] = relay::codes::no_such_transfer;
  codes["BAD_REQUEST"] = relay::codes::bad_request;
  codes["SERVER_BUSY"] = relay::codes::server_busy;
  m.attr("CODES") = codes;
  m.attr("BROADCAST") = std::string(relay::broadcast_recipient);
  m.attr("MAX_LIST_BODY") = relay::max_list_body;
}

}  // namespace improto::python
