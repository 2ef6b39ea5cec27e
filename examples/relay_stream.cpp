// Decodes a relay (seed 003) byte stream that arrives in arbitrary pieces,
// as a socket would deliver it, and prints each message.
//
//   relay_stream              decode a built-in sample conversation
//   relay_stream - < bytes    decode a server-to-client stream from stdin

#include <improto/relay/decoder.hpp>

#include <iostream>
#include <iterator>
#include <string>

namespace relay = improto::relay;

int main(int argc, char** argv) {
  std::string stream;
  if (argc > 1 && std::string_view(argv[1]) == "-") {
    stream.assign(std::istreambuf_iterator<char>(std::cin), {});
  }
  if (stream.empty()) {
    // What a sending client sees from the server, then a broken message.
    stream =
        "REGISTERED TOSEND alice\n\n"
        "SENT bob\n\n"
        "SEND bob\n\n"  // the seed's spelling of SENT
        "FORWARD carol\nContent-length: 12\n\nhello, alice"
        "ERROR 102 Unable to send\n\n"
        "FORWARD dave\n\n";  // no Content-length: the stream cannot go on
  }

  relay::decoder decoder(relay::direction::to_client);
  // Feed it in 7-byte pieces: message boundaries fall anywhere.
  for (std::size_t at = 0; at < stream.size() && !decoder.failed(); at += 7) {
    std::string_view piece = std::string_view(stream).substr(at, 7);
    while (!decoder.failed()) {
      auto next = decoder.next(piece);
      if (!next) {
        std::cout << "error " << improto::name(next.error().code()) << ": "
                  << next.error().message() << "\n";
        continue;
      }
      if (!*next) break;  // need more bytes
      std::cout << relay::describe(**next) << "\n";
    }
  }
  if (!decoder.failed()) {
    if (auto end = decoder.finish(); !end) std::cout << "error at end: " << end.error().message() << "\n";
  }
  return 0;
}
