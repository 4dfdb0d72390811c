#include "ctm/io/json.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

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

int64_t json_integer(const Json& v, int64_t lo, int64_t hi, const std::string& what,
                     const std::string& where) {
  auto fail = [&]() -> int64_t {
    throw Error(str(where, ": ", what, " must be an integer in [", lo, ", ", hi, "] (got ", v.dump(), ")"));
  };
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return fail();
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    return i < lo || i > hi ? fail() : i;
  }
  if (!v.is_number_float()) return fail();
  const double d = v.get<double>();
  // Compare as doubles first: casting a double outside int64's range is undefined.
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) return fail();
  const int64_t i = static_cast<int64_t>(d);
  return i < lo || i > hi ? fail() : i;
}

double json_number(const Json& v, double lo, double hi, const std::string& what, const std::string& where) {
  if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi))
    throw Error(str(where, ": ", what, " must be a number in [", lo, ", ", hi, "] (got ", v.dump(), ")"));
  return v.get<double>();
}

namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) |
                       (i + 2 < n ? uint32_t{p[i + 2]} : 0);
    out.push_back(kBase64[(v >> 18) & 63]);
    out.push_back(kBase64[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kBase64[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kBase64[v & 63] : '=');
  }
  return out;
}

std::vector<uint8_t> base64_decode(const Json& v, size_t value_size, const std::string& where) {
  if (!v.is_string()) throw Error(str(where, ": expected base64 text, got ", v.type_name()));
  const std::string& s = v.get_ref<const std::string&>();
  int8_t value_of[256];
  std::fill(std::begin(value_of), std::end(value_of), int8_t{-1});
  for (int i = 0; i < 64; ++i) value_of[static_cast<uint8_t>(kBase64[i])] = static_cast<int8_t>(i);
  if (s.size() % 4 != 0)
    throw Error(str(where, ": base64 text of ", s.size(), " characters (not a multiple of 4)"));
  std::vector<uint8_t> out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    uint32_t acc = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = s[i + k];
      const bool is_pad = c == '=' && i + 4 == s.size() && k >= 2;
      if (!is_pad && (pad > 0 || value_of[static_cast<uint8_t>(c)] < 0))
        throw Error(str(where, ": not base64 text (character ", i + k, ")"));
      pad += is_pad ? 1 : 0;
      acc = (acc << 6) | (is_pad ? 0u : static_cast<uint32_t>(value_of[static_cast<uint8_t>(c)]));
    }
    for (int k = 0; k < 3 - pad; ++k) out.push_back(static_cast<uint8_t>(acc >> (16 - 8 * k)));
  }
  if (out.size() % value_size != 0) throw Error(str(where, ": ", out.size(), " bytes are not whole values"));
  return out;
}

template <class T>
std::vector<T> values_from_base64(const Json& v, const std::string& where) {
  const std::vector<uint8_t> bytes = base64_decode(v, sizeof(T), where);
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

std::string base64_floats(const std::vector<float>& values) {
  return base64_encode(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float));
}
std::string base64_ints(const std::vector<int32_t>& values) {
  return base64_encode(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(int32_t));
}
std::vector<float> floats_from_base64(const Json& v, const std::string& where) {
  return values_from_base64<float>(v, where);
}
std::vector<int32_t> ints_from_base64(const Json& v, const std::string& where) {
  return values_from_base64<int32_t>(v, where);
}

}  // namespace ctm
