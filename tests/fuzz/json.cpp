// Fuzz target: the JSON and JSON Lines readers (ctm/io/json.hpp, jsonl.hpp).
// The input is parsed as one JSON value and read as a JSONL file (from a memfd). A value that parses must
// dump (compact, indented, and with invalid UTF-8 replaced: the same text, since the parser admits only valid
// UTF-8), parse back to an equal value and nest no deeper than kMaxJsonDepth; every JSONL record must dump.
// Anything other than ctm::Error escaping is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/jsonl.hpp"
#include "fuzz_util.hpp"

namespace {

using ctm::fuzz::require;

// Nesting depth of a parsed value (a scalar is 0, [] is 1).
int depth(const ctm::Json& v) {
  int deepest = 0;
  if (v.is_structured())
    for (const auto& child : v) deepest = std::max(deepest, depth(child));
  return v.is_structured() ? deepest + 1 : 0;
}

void check_round_trip(const ctm::Json& value) {
  require(depth(value) <= ctm::kMaxJsonDepth, "a value nested deeper than kMaxJsonDepth was parsed");
  const std::string compact = value.dump();
  const std::string indented = value.dump(2);
  const std::string replaced = value.dump(-1, ' ', false, ctm::Json::error_handler_t::replace);
  require(compact == replaced, "a parsed value dumps differently with error_handler_t::replace");
  require(ctm::parse_json(compact, "compact dump") == value, "the compact dump parses to another value");
  require(ctm::parse_json(indented, "indented dump") == value, "the indented dump parses to another value");
}

void fuzz_value(std::string_view text) {
  ctm::Json value;
  try {
    value = ctm::parse_json(text, "fuzz");
  } catch (const ctm::Error&) {
    return;
  }
  check_round_trip(value);
}

// The JSONL reader on the same bytes, record by record and through read_jsonl with a record limit.
void fuzz_jsonl(std::string_view text) {
  ctm::fuzz::MemFile file(text);
  try {
    ctm::JsonlReader reader(file.path());
    ctm::Json record;
    while (reader.next(record)) {
      require(reader.line() >= 1, "JsonlReader::line() < 1 after a record");
      record.dump();
    }
  } catch (const ctm::Error&) {
  }
  try {
    const auto records = ctm::read_jsonl(file.path(), 3);
    require(records.size() <= 3, "read_jsonl returned more than max_records");
  } catch (const ctm::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz_value(text);
  fuzz_jsonl(text);
  return 0;
}
