// JSON through nlohmann::json (a well-kept, fuzzed parser). ordered_json keeps the key order of the input, so
// a task that copies input lines to its output ("the input line plus ...") preserves them as written.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace ctm {

using Json = nlohmann::ordered_json;

// JSON nested deeper than this is rejected before it is parsed: nlohmann's parser is iterative, but dumping
// and destroying a value recurse once per level, so 100,000 nested brackets would overflow the stack. Real
// inputs (tokenizer.json, config.json, records) nest fewer than 10 levels.
constexpr int kMaxJsonDepth = 512;

// ctm::Error naming `where` when text nests arrays/objects deeper than kMaxJsonDepth (strings are skipped).
void check_json_depth(std::string_view text, const std::string& where);

// Parses text; `where` names the source in errors ("file.jsonl:12").
Json parse_json(std::string_view text, const std::string& where);
Json read_json_file(const std::string& path);
void write_json_file_atomic(const std::string& path, const Json& value, int indent = 2);

// Typed field access with errors that name the source, the field and what was expected.
const Json& require_field(const Json& obj, const char* key, const std::string& where);
std::string require_string(const Json& obj, const char* key, const std::string& where);

}  // namespace ctm
