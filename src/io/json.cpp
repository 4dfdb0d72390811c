#include "ctm/io/json.hpp"

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace ctm {

void check_json_depth(std::string_view text, const std::string& where) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Error(str(where, ": invalid JSON: nested deeper than ", kMaxJsonDepth, " levels"));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

Json parse_json(std::string_view text, const std::string& where) {
  check_json_depth(text, where);
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for numbers like 1e99999
    // nlohmann's message begins with "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    std::string msg = e.what();
    const auto pos = msg.find("] ");
    if (pos != std::string::npos) msg = msg.substr(pos + 2);
    throw Error(str(where, ": invalid JSON: ", msg));
  }
}

Json read_json_file(const std::string& path) {
  return parse_json(read_file(path), path);
}

void write_json_file_atomic(const std::string& path, const Json& value, int indent) {
  std::string text = value.dump(indent, ' ', false, Json::error_handler_t::replace);
  text.push_back('\n');
  write_file_atomic(path, text);
}

const Json& require_field(const Json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) throw Error(str(where, ": expected a JSON object, got ", obj.type_name()));
  auto it = obj.find(key);
  if (it == obj.end()) throw Error(str(where, ": missing field \"", key, "\""));
  return *it;
}

std::string require_string(const Json& obj, const char* key, const std::string& where) {
  const Json& v = require_field(obj, key, where);
  if (!v.is_string()) throw Error(str(where, ": field \"", key, "\" must be a string, got ", v.type_name()));
  return v.get<std::string>();
}

}  // namespace ctm
