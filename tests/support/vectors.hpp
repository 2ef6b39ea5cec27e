#pragma once

// Shared test-vector machinery. Vector files live in tests/vectors/<protocol>/
// and are read by these C++ tests and by the Python tests, so their format is
// plain text:
//
//   # comment
//   === seed 003: register on the send socket
//   decoder: relay.to_server
//   in: REGISTER TOSEND alice\n\n        (escaped bytes; several in: lines concatenate)
//   eof: yes                             (optional: the stream ends after the input)
//   out: register role=TOSEND user="alice"   (describe() of each message, in order)
//   out: error missing_content_length        (a final error, by errc name)
//
// A stream decoder must give the same `out` lines for the whole input, for
// the input one byte at a time, and for every split into two chunks.

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "improto/error.hpp"
#include "improto/wire/framing.hpp"

namespace improto::test {

struct vector_case {
  std::string where;  // file:line, for failure messages
  std::string name;
  std::string decoder;
  std::string input;
  bool eof = false;
  std::vector<std::string> expected;
};

std::vector<vector_case> load_vectors(const std::filesystem::path& dir);
std::filesystem::path vector_dir(std::string_view protocol);

std::string error_line(const error& e);

// A decoder reduced to "bytes in, description lines out".
class stream_adapter {
 public:
  virtual ~stream_adapter() = default;
  virtual void feed(std::string_view chunk, std::vector<std::string>& out) = 0;
  virtual void finish(std::vector<std::string>& out) = 0;
  // Datagram codecs parse whole inputs only; splitting them means nothing.
  virtual bool is_stream() const { return true; }
};
using adapter_factory = std::function<std::unique_ptr<stream_adapter>()>;
using adapter_table = std::map<std::string, adapter_factory, std::less<>>;

// Adapts any decoder with
//   decode_result<M> next(std::string_view&), decode_result<M> finish() and
//   bool failed() (true once an error is sticky).
// After an error that is not sticky (a well-framed message with bad
// content) decoding goes on, so vectors can show what follows it.
// `describe(M)` names each message; `reencode(M) -> std::string`, when given,
// must produce bytes that decode to a message with the same description.
template <class Decoder, class Describe, class Reencode = std::nullptr_t>
class decoder_adapter final : public stream_adapter {
 public:
  decoder_adapter(std::function<Decoder()> make, Describe describe, Reencode reencode = nullptr)
      : make_(std::move(make)), decoder_(make_()), describe_(describe), reencode_(reencode) {}

  void feed(std::string_view chunk, std::vector<std::string>& out) override {
    while (!failed_) {
      auto r = decoder_.next(chunk);
      if (!emit(r, out)) break;
    }
  }
  void finish(std::vector<std::string>& out) override {
    while (!failed_) {
      auto r = decoder_.finish();
      if (!emit(r, out)) break;
    }
  }

 private:
  template <class R>
  bool emit(R& r, std::vector<std::string>& out) {
    if (!r) {
      out.push_back(error_line(r.error()));
      failed_ = decoder_.failed();
      return !failed_;
    }
    if (!*r) return false;
    std::string text = describe_(**r);
    if constexpr (!std::is_same_v<Reencode, std::nullptr_t>) {
      std::string bytes = reencode_(**r);
      Decoder fresh = make_();
      std::string_view view(bytes);
      auto again = fresh.next(view);
      if (!again || !*again) {
        if (again && !*again) again = fresh.finish();
      }
      std::string round = (!again) ? error_line(again.error())
                          : (!*again) ? std::string("<nothing>")
                                      : describe_(**again);
      if (round != text) text += "  <round trip gave: " + round + ">";
    }
    out.push_back(std::move(text));
    return true;
  }

  std::function<Decoder()> make_;
  Decoder decoder_;
  Describe describe_;
  Reencode reencode_;
  bool failed_ = false;
};

template <class Decoder, class Describe, class Reencode = std::nullptr_t>
adapter_factory stream(std::function<Decoder()> make, Describe describe,
                       Reencode reencode = nullptr) {
  return [=] {
    return std::make_unique<decoder_adapter<Decoder, Describe, Reencode>>(make, describe,
                                                                          reencode);
  };
}

// Adapts `result<M> parse(std::string_view)` for whole datagrams or bodies.
template <class Parse, class Describe, class Reencode = std::nullptr_t>
class datagram_adapter final : public stream_adapter {
 public:
  datagram_adapter(Parse parse, Describe describe, Reencode reencode = nullptr)
      : parse_(parse), describe_(describe), reencode_(reencode) {}
  void feed(std::string_view chunk, std::vector<std::string>& /*out*/) override {
    input_.append(chunk);
  }
  void finish(std::vector<std::string>& out) override {
    auto r = parse_(std::string_view(input_));
    if (!r) {
      out.push_back(error_line(r.error()));
      return;
    }
    std::string text = describe_(*r);
    if constexpr (!std::is_same_v<Reencode, std::nullptr_t>) {
      std::string bytes = reencode_(*r);
      auto again = parse_(std::string_view(bytes));
      std::string round = again ? describe_(*again) : error_line(again.error());
      if (round != text) text += "  <round trip gave: " + round + ">";
    }
    out.push_back(std::move(text));
  }
  bool is_stream() const override { return false; }

 private:
  Parse parse_;
  Describe describe_;
  Reencode reencode_;
  std::string input_;
};

template <class Parse, class Describe, class Reencode = std::nullptr_t>
adapter_factory datagram(Parse parse, Describe describe, Reencode reencode = nullptr) {
  return [=] {
    return std::make_unique<datagram_adapter<Parse, Describe, Reencode>>(parse, describe,
                                                                         reencode);
  };
}

// Decodes `input` fed as the given chunks (plus eof when asked).
std::vector<std::string> run_chunks(const adapter_factory& make,
                                    const std::vector<std::string_view>& chunks, bool eof);

// Checks one vector whole, byte by byte and at every two-way split point.
// Reports failures through doctest.
void check_vector(const vector_case& v, const adapter_factory& make);

// Runs every vector file of tests/vectors/<protocol>/; fails on vectors that
// name a decoder missing from `adapters`, and on an empty directory.
void run_vector_dir(std::string_view protocol, const adapter_table& adapters);

}  // namespace improto::test
