#include "vectors.hpp"

#include "guarded.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "improto/wire/text.hpp"

namespace improto::test {

std::filesystem::path vector_dir(std::string_view protocol) {
  return std::filesystem::path(IMPROTO_VECTOR_DIR) / std::string(protocol);
}

std::string error_line(const error& e) { return "error " + std::string(name(e.code())); }

namespace {

void parse_file(const std::filesystem::path& path, std::vector<vector_case>& out) {
  std::ifstream file(path, std::ios::binary);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::string line;
  int number = 0;
  vector_case* current = nullptr;
  auto where = [&] { return path.filename().string() + ":" + std::to_string(number); };
  while (std::getline(file, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("=== ", 0) == 0) {
      out.push_back({});
      current = &out.back();
      current->where = where();
      current->name = line.substr(4);
      continue;
    }
    REQUIRE_MESSAGE(current != nullptr, where() << ": text before the first '=== name'");
    auto colon = line.find(": ");
    std::string key = colon == std::string::npos ? line : line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
    if (key == "decoder") {
      current->decoder = value;
    } else if (key == "in" || key == "in:") {
      auto bytes = wire::unescape(value);
      REQUIRE_MESSAGE(bytes.has_value(),
                      where() << ": " << (bytes ? std::string() : bytes.error().message()));
      current->input += *bytes;
    } else if (key == "eof") {
      current->eof = value == "yes";
    } else if (key == "out") {
      current->expected.push_back(value);
    } else {
      FAIL(where() << ": unknown key '" << key << "'");
    }
  }
}

}  // namespace

std::vector<vector_case> load_vectors(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".vec") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<vector_case> out;
  for (const auto& f : files) parse_file(f, out);
  return out;
}

std::vector<std::string> run_chunks(const adapter_factory& make,
                                    const std::vector<std::string_view>& chunks, bool eof,
                                    bool quiet) {
  auto adapter = make();
  adapter->set_quiet(quiet);
  std::vector<std::string> out;
  for (auto chunk : chunks) adapter->feed(chunk, out);
  if (eof || !adapter->is_stream()) adapter->finish(out);
  return out;
}

namespace {

std::string show(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n    " + l;
  return s.empty() ? "\n    <nothing>" : s;
}

}  // namespace

std::string round_trip_mismatch(std::string_view round) {
  return "  <round trip gave: " + std::string(round) + ">";
}

std::string not_canonical(std::string_view bytes) {
  return "  <not canonical: re-serialized as \"" + wire::escape(bytes) + "\">";
}

namespace {

// A line an adapter marked as failing its round trip, or "" if none did.
std::string mismatch_in(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    if (l.find("  <round trip gave: ") != std::string::npos ||
        l.find("  <not canonical: ") != std::string::npos) {
      return l;
    }
  }
  return {};
}

// Every prefix of `input` alone, on guarded memory, then the end of the
// stream: whatever it decodes must survive its round trip (checked up to
// 8 KiB: past it, re-encoding every prefix of one long body is quadratic).
void check_prefixes(std::string_view input, const adapter_factory& make, std::string_view who,
                    guarded_buffer& room) {
  const bool quiet = input.size() > 8192;
  for (std::size_t n = 0; n <= input.size(); ++n) {
    auto lines = run_chunks(make, {room.place(input.substr(0, n))}, true, quiet);
    auto bad = mismatch_in(lines);
    if (!bad.empty()) {
      FAIL_CHECK(who << ": the prefix of " << n << " bytes gave: " << bad);
      return;
    }
  }
}

}  // namespace

void check_vector(const vector_case& v, const adapter_factory& make,
                  const std::vector<adapter_factory>& extras) {
  INFO(v.where << " '" << v.name << "'");
  guarded_bytes guarded(v.input);
  std::string_view input = guarded.view();
  auto whole = run_chunks(make, {input}, v.eof);
  CHECK_MESSAGE(whole == v.expected,
                "whole input gave:" << show(whole) << "\n  expected:" << show(v.expected));
  guarded_buffer room(input.size());  // for prefixes and heads
  check_prefixes(input, make, "its decoder", room);
  for (std::size_t i = 0; i < extras.size(); ++i) {
    auto bad = mismatch_in(run_chunks(extras[i], {input}, v.eof));
    CHECK_MESSAGE(bad.empty(), "extra decoder " << i << " gave: " << bad);
    check_prefixes(input, extras[i], "extra decoder " + std::to_string(i), room);
  }
  if (!make()->is_stream()) return;

  // One byte a chunk: the last one ends at the guard page.
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  auto one_by_one = run_chunks(make, bytes, v.eof);
  CHECK_MESSAGE(one_by_one == v.expected,
                "byte by byte gave:" << show(one_by_one));

  // Two chunks, each ending at a guard page.
  for (std::size_t split = 1; split < input.size(); ++split) {
    auto parts = run_chunks(make, {room.place(input.substr(0, split)), input.substr(split)}, v.eof);
    if (parts != v.expected) {
      FAIL_CHECK("split at " << split << " gave:" << show(parts));
      break;
    }
  }
}

void run_vector_dir(std::string_view protocol, const adapter_table& adapters,
                    const extra_table& extras) {
  for (const auto& entry : extras) {
    const std::string& decoder = entry.first;
    REQUIRE_MESSAGE(adapters.count(decoder) == 1,
                    "extra decoders for unknown decoder '" << decoder << "'");
  }
  auto cases = load_vectors(vector_dir(protocol));
  REQUIRE_MESSAGE(!cases.empty(), "no vectors in " << vector_dir(protocol));
  for (const auto& v : cases) {
    auto it = adapters.find(v.decoder);
    REQUIRE_MESSAGE(it != adapters.end(),
                    v.where << ": no adapter for decoder '" << v.decoder << "'");
    REQUIRE_MESSAGE(!v.expected.empty(), v.where << ": vector without out: lines");
    auto extra = extras.find(v.decoder);
    check_vector(v, it->second, extra == extras.end() ? std::vector<adapter_factory>{} : extra->second);
  }
  MESSAGE(protocol << ": " << cases.size() << " vectors checked");
}

}  // namespace improto::test
