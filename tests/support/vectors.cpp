#include "vectors.hpp"

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
                                    const std::vector<std::string_view>& chunks, bool eof) {
  auto adapter = make();
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

void check_vector(const vector_case& v, const adapter_factory& make) {
  INFO(v.where << " '" << v.name << "'");
  std::string_view input(v.input);
  auto whole = run_chunks(make, {input}, v.eof);
  CHECK_MESSAGE(whole == v.expected,
                "whole input gave:" << show(whole) << "\n  expected:" << show(v.expected));
  if (!make()->is_stream()) return;

  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  auto one_by_one = run_chunks(make, bytes, v.eof);
  CHECK_MESSAGE(one_by_one == v.expected,
                "byte by byte gave:" << show(one_by_one));

  for (std::size_t split = 1; split < input.size(); ++split) {
    auto parts = run_chunks(make, {input.substr(0, split), input.substr(split)}, v.eof);
    if (parts != v.expected) {
      FAIL_CHECK("split at " << split << " gave:" << show(parts));
      break;
    }
  }
}

void run_vector_dir(std::string_view protocol, const adapter_table& adapters) {
  auto cases = load_vectors(vector_dir(protocol));
  REQUIRE_MESSAGE(!cases.empty(), "no vectors in " << vector_dir(protocol));
  for (const auto& v : cases) {
    auto it = adapters.find(v.decoder);
    REQUIRE_MESSAGE(it != adapters.end(),
                    v.where << ": no adapter for decoder '" << v.decoder << "'");
    REQUIRE_MESSAGE(!v.expected.empty(), v.where << ": vector without out: lines");
    check_vector(v, it->second);
  }
  MESSAGE(protocol << ": " << cases.size() << " vectors checked");
}

}  // namespace improto::test
