#include "improto/net/common.hpp"

#include <asio/error.hpp>

#include "improto/wire/text.hpp"

namespace improto::net {

error from_system(const std::error_code& ec, std::string_view context) {
  std::string detail(context);
  if (!detail.empty()) detail += ": ";
  detail += ec.message();
  if (ec == asio::error::address_in_use) return {errc::address_in_use, detail};
  if (ec == asio::error::connection_refused) return {errc::connection_refused, detail};
  if (ec == asio::error::timed_out) return {errc::timeout, detail};
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::error::operation_aborted) {
    return {errc::connection_closed, detail};
  }
  return {errc::io_error, detail};
}

result<asio::ip::address> parse_address(std::string_view host) {
  if (host == "localhost") return asio::ip::make_address_v4("127.0.0.1");
  std::string text(host);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  std::error_code ec;
  auto address = asio::ip::make_address(text, ec);
  if (ec) {
    return fail(errc::invalid_argument,
                "'" + wire::escape(host) + "' is not an IP address (or localhost)");
  }
  return address;
}

result<std::uint16_t> parse_port(std::string_view text, bool allow_zero) {
  auto value = wire::parse_decimal(text, 65535);
  if (!value || (*value == 0 && !allow_zero)) {
    return fail(errc::invalid_argument, "'" + wire::escape(text) + "' is not a port number (" +
                                            (allow_zero ? "0" : "1") + "-65535)");
  }
  return static_cast<std::uint16_t>(*value);
}

result<host_port> parse_host_port(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return fail(errc::invalid_argument,
                "'" + wire::escape(text) + "' is not HOST:PORT (e.g. 127.0.0.1:65432)");
  }
  std::string_view host = text.substr(0, colon);
  if (host.find(':') != std::string_view::npos && host.front() != '[') {
    return fail(errc::invalid_argument, "write IPv6 addresses in brackets: [::1]:PORT");
  }
  auto address = parse_address(host);
  if (!address) return tl::unexpected(address.error());
  auto port = parse_port(text.substr(colon + 1), true);
  if (!port) return tl::unexpected(port.error());
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  return host_port{std::string(host), *port};
}

namespace {
template <class Endpoint>
std::string endpoint_text(const Endpoint& ep) {
  auto address = ep.address();
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}
}  // namespace

std::string to_string(const asio::ip::tcp::endpoint& ep) { return endpoint_text(ep); }
std::string to_string(const asio::ip::udp::endpoint& ep) { return endpoint_text(ep); }

}  // namespace improto::net
