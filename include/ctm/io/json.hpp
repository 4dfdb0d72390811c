// JSON through nlohmann::json (a well-kept, fuzzed parser). ordered_json keeps the key order of the input, so
// a task that copies input lines to its output ("the input line plus ...") preserves them as written.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// The one rule for integers in ctm's JSON inputs: a JSON integer, or a number with an integral value (3.0),
// in [lo, hi]; anything else is a ctm::Error "where: what must be an integer in [lo, hi] (got <value as
// written>)".
int64_t json_integer(const Json& v, int64_t lo, int64_t hi, const std::string& what,
                     const std::string& where);
// Arrays of numbers as base64 text of their little-endian bytes (journals of per-token scores: 4x smaller
// than JSON numbers, and exact). Decoding is a ctm::Error naming `where` for text that is not base64 of whole
// values.
std::string base64_floats(const std::vector<float>& values);
std::string base64_ints(const std::vector<int32_t>& values);
std::vector<float> floats_from_base64(const Json& v, const std::string& where);
std::vector<int32_t> ints_from_base64(const Json& v, const std::string& where);

// A finite number in [lo, hi].
double json_number(const Json& v, double lo, double hi, const std::string& what, const std::string& where);

}  // namespace ctm
