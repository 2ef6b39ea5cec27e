#pragma once

// Shared test-vector machinery. Vector files live in tests/vectors/<protocol>/
// in plain text, so a reviewer reads them as a specification:
//
//   # comment
//   === seed 003: register on the send socket
//   decoder: relay.to_server
//   in: REGISTER TOSEND alice\n\n        (escaped bytes; several in: lines concatenate)
//   eof: yes                             (optional: the stream ends after the input)
//   out: register role=TOSEND user="alice"   (describe() of each message, in order)
//   out: error missing_content_length        (a final error, by errc name)
//
// check_vector() is the one harness every protocol's vectors_test runs. Each
// input is decoded whole, one byte at a time and split in two at every point,
// and must give the `out` lines each time; every message is re-serialized and
// decoded again (a mismatch shows in its line). All of it reads from memory
// that ends at a PROT_NONE page (guarded.hpp), and so does every prefix of the
// input decoded on its own, ended by eof: a decoder that reads one byte past
// what it was given crashes the test.

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

// What an adapter appends to a message's line when re-serializing it does
// not give the message back.
std::string round_trip_mismatch(std::string_view round);
std::string not_canonical(std::string_view bytes);

// A decoder reduced to "bytes in, description lines out".
class stream_adapter {
 public:
  virtual ~stream_adapter() = default;
  virtual void feed(std::string_view chunk, std::vector<std::string>& out) = 0;
  virtual void finish(std::vector<std::string>& out) = 0;
  // Datagram codecs parse whole inputs only; splitting them means nothing.
  virtual bool is_stream() const { return true; }
  // Quiet: each message is the line "message", neither described nor
  // re-serialized (describing every prefix of a 64 KiB body is quadratic).
  void set_quiet(bool quiet) { quiet_ = quiet; }

 protected:
  bool quiet_ = false;
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
    if (quiet_) {
      out.emplace_back("message");
      return true;
    }
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
      if (round != text) text += round_trip_mismatch(round);
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
  datagram_adapter(Parse parse, Describe describe, Reencode reencode = nullptr,
                   bool canonical = false)
      : parse_(parse), describe_(describe), reencode_(reencode), canonical_(canonical) {}
  void feed(std::string_view chunk, std::vector<std::string>& /*out*/) override {
    // One chunk is parsed where it lies (on guarded memory), not copied.
    if (chunks_++ == 0) {
      view_ = chunk;
    } else {
      if (chunks_ == 2) input_.assign(view_);
      input_.append(chunk);
      view_ = input_;
    }
  }
  void finish(std::vector<std::string>& out) override {
    auto r = parse_(view_);
    if (!r) {
      out.push_back(error_line(r.error()));
      return;
    }
    if (quiet_) {
      out.emplace_back("message");
      return;
    }
    std::string text = describe_(*r);
    if constexpr (!std::is_same_v<Reencode, std::nullptr_t>) {
      std::string bytes = reencode_(*r);
      auto again = parse_(std::string_view(bytes));
      std::string round = again ? describe_(*again) : error_line(again.error());
      if (round != text) text += round_trip_mismatch(round);
      if (canonical_ && bytes != view_) text += not_canonical(bytes);
    }
    out.push_back(std::move(text));
  }
  bool is_stream() const override { return false; }

 private:
  Parse parse_;
  Describe describe_;
  Reencode reencode_;
  bool canonical_;
  std::size_t chunks_ = 0;
  std::string_view view_;
  std::string input_;
};

template <class Parse, class Describe, class Reencode = std::nullptr_t>
adapter_factory datagram(Parse parse, Describe describe, Reencode reencode = nullptr) {
  return [=] {
    return std::make_unique<datagram_adapter<Parse, Describe, Reencode>>(parse, describe,
                                                                         reencode);
  };
}

// A datagram() whose encoding is canonical: whatever parses re-serializes to
// exactly the bytes it came from (a binary format with one spelling).
template <class Parse, class Describe, class Reencode>
adapter_factory canonical_datagram(Parse parse, Describe describe, Reencode reencode) {
  return [=] {
    return std::make_unique<datagram_adapter<Parse, Describe, Reencode>>(parse, describe,
                                                                         reencode, true);
  };
}

// Decodes `input` fed as the given chunks (plus eof when asked).
std::vector<std::string> run_chunks(const adapter_factory& make,
                                    const std::vector<std::string_view>& chunks, bool eof,
                                    bool quiet = false);

// Decoders that vectors do not name but that must survive the same inputs
// (another limit, another parser of the same bytes), keyed by the decoder
// the vector names. They run on the guarded input and its every prefix;
// what they decode is not compared, a round-trip mismatch fails.
using extra_table = std::map<std::string, std::vector<adapter_factory>, std::less<>>;

// Checks one vector as the comment at the top of this file says. Reports
// failures through doctest.
void check_vector(const vector_case& v, const adapter_factory& make,
                  const std::vector<adapter_factory>& extras = {});

// Runs every vector file of tests/vectors/<protocol>/ through check_vector();
// fails on vectors that name a decoder missing from `adapters`, and on an
// empty directory.
void run_vector_dir(std::string_view protocol, const adapter_table& adapters,
                    const extra_table& extras = {});


}  // namespace improto::test
