// Loading tokenizer.json (+ tokenizer_config.json) into a TokenizerImpl, and the public Tokenizer API.
#include "ctm/text/tokenizer.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <initializer_list>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "tokenizer_impl.hpp"
#include "utf8.hpp"

namespace ctm::text {

namespace detail {

ByteLevelMap::ByteLevelMap() {
  std::fill(std::begin(char_to_byte), std::end(char_to_byte), int16_t{-1});
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    byte_to_char[b] = printable ? b : next++;
    char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
  }
}

std::optional<std::string> ByteLevelMap::to_bytes(std::string_view token) const {
  // The byte characters are below U+0144: one or two UTF-8 bytes each. The token need not be UTF-8 (a decoder
  // step before ByteLevel may have made raw bytes), so nothing past its end is read.
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const auto b = static_cast<unsigned char>(token[i]);
    uint32_t cp = b;
    if (b >= 0x80) {
      if (b < 0xC2 || b > 0xC5 || i + 1 >= token.size()) return std::nullopt;
      const auto c = static_cast<unsigned char>(token[i + 1]);
      if ((c & 0xC0) != 0x80) return std::nullopt;
      cp = ((b & 0x1Fu) << 6) | (c & 0x3Fu);
      ++i;
    }
    ++i;
    if (cp >= 0x144 || char_to_byte[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(char_to_byte[cp]));
  }
  return out;
}

std::string ByteLevelMap::to_chars(std::string_view bytes) const {
  std::string out;
  for (unsigned char b : bytes) utf8_append(out, byte_to_char[b]);
  return out;
}

const ByteLevelMap& byte_level_map() {
  static const ByteLevelMap map;
  return map;
}

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens, const std::vector<size_t>& which,
                              const std::vector<std::string>& patterns) {
  patterns_.clear();
  tokens_.clear();
  trie_.assign(1, Node{});
  std::fill(std::begin(root_next_), std::end(root_next_), -1);
  for (size_t k = 0; k < which.size(); ++k) {
    if (patterns[k].empty()) continue;  // an empty pattern never matches in Aho-Corasick
    patterns_.push_back(patterns[k]);
    tokens_.push_back(&tokens[which[k]]);
  }
  for (size_t p = 0; p < patterns_.size(); ++p) {
    int32_t node = 0;
    for (unsigned char b : patterns_[p]) {
      int32_t child = -1;
      for (const auto& [byte, n] : trie_[node].next)
        if (byte == b) child = n;
      if (child < 0) {
        child = static_cast<int32_t>(trie_.size());
        trie_[node].next.emplace_back(b, child);
        trie_.emplace_back();
        if (node == 0) root_next_[b] = child;
      }
      node = child;
    }
    // A repeated pattern keeps the first token listed.
    if (trie_[node].pattern < 0) trie_[node].pattern = static_cast<int32_t>(p);
  }
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t start;
  return is_word_char(utf8_prev(s, s.size(), start));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(utf8_next(s, i));
}

// Start of the run of white space that ends s.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start;
    if (!is_white_space(utf8_prev(s, end, start))) break;
    end = start;
  }
  return end;
}

// Length of the run of white space that starts s.
size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_white_space(utf8_next(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedTokenMatcher::find_pieces(std::string_view s, std::vector<Piece>& out) const {
  out.clear();
  if (patterns_.empty() || s.empty()) {
    out.push_back(Piece{-1, 0, s.size()});
    return;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    // Leftmost-longest: the first position where some pattern matches, its longest pattern there.
    int32_t node = root_next_[static_cast<unsigned char>(s[pos])];
    if (node < 0) {
      ++pos;
      continue;
    }
    int32_t found = trie_[node].pattern;
    for (size_t k = pos + 1; k < s.size(); ++k) {
      const auto b = static_cast<unsigned char>(s[k]);
      int32_t child = -1;
      for (const auto& [byte, n] : trie_[node].next)
        if (byte == b) child = n;
      if (child < 0) break;
      node = child;
      if (trie_[node].pattern >= 0) found = trie_[node].pattern;
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + patterns_[found].size();
    pos = stop;  // matches do not overlap, whatever the rules below decide
    const AddedToken& tok = *tokens_[found];
    if (tok.single_word) {
      const bool space_before = start == 0 || !ends_with_word(s.substr(0, start));
      const bool space_after = stop == s.size() || !starts_with_word(s.substr(stop));
      if (!space_before || !space_after) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(s.substr(0, start)), start_offset);
    if (tok.rstrip) stop += leading_space_len(s.substr(stop));
    if (start_offset < start) out.push_back(Piece{-1, start_offset, start});
    out.push_back(Piece{tok.id, start, stop});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back(Piece{-1, start_offset, s.size()});
}

namespace {

std::atomic<uint64_t> g_next_instance{1};

// Rejects fields this implementation does not know, so that nothing is silently ignored.
template <class J>
void check_keys(const J& obj, std::initializer_list<const char*> allowed, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      throw Error(str(where, ": field \"", key, "\" is not supported"));
    }
  }
}

template <class J>
const J* field(const J& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

template <class J>
bool get_bool(const J& obj, const char* key, bool fallback, const std::string& where) {
  const J* v = field(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw Error(str(where, ": field \"", key, "\" must be true or false"));
  return v->template get<bool>();
}

template <class J>
std::string get_string(const J& obj, const char* key, const std::string& where) {
  const J* v = field(obj, key);
  if (!v || !v->is_string()) throw Error(str(where, ": field \"", key, "\" must be a string"));
  return v->template get<std::string>();
}

// Token ids index the tokenizer's tables, so a hostile id must not ask for gigabytes: real vocabularies have
// at most a few hundred thousand ids, far below this bound.
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

// v as a token id; `what` names it in the error.
template <class J>
int32_t token_id(const J& v, const std::string& what) {
  if (!v.is_number_integer() || v.template get<int64_t>() < 0 || v.template get<int64_t>() > kMaxTokenId)
    throw Error(str(what, " must be a token id (an integer from 0 to ", kMaxTokenId, "), got ", v.dump()));
  return static_cast<int32_t>(v.template get<int64_t>());
}

// A count such as Strip's start and stop: a non-negative integer, `fallback` when absent.
template <class J>
size_t get_count(const J& obj, const char* key, size_t fallback, const std::string& where) {
  const J* v = field(obj, key);
  if (!v) return fallback;
  if (!v->is_number_integer() || v->template get<int64_t>() < 0)
    throw Error(str(where, ": field \"", key, "\" must be a non-negative integer, got ", v->dump()));
  return static_cast<size_t>(v->template get<int64_t>());
}

template <class J>
const J& get_array(const J& obj, const char* key, const std::string& where) {
  const J* v = field(obj, key);
  if (!v || !v->is_array()) throw Error(str(where, ": field \"", key, "\" must be a list"));
  return *v;
}

template <class J>
std::string type_of(const J& obj, const std::string& where) {
  if (!obj.is_object()) throw Error(str(where, ": expected an object, got ", obj.type_name()));
  return get_string(obj, "type", where);
}

// {"String": "..."} or {"Regex": "..."}; any_bytes as for Regex.
template <class J>
std::unique_ptr<Regex> parse_pattern(const J& obj, const char* key, const std::string& where,
                                     bool any_bytes = false) {
  const J* p = field(obj, key);
  const std::string at = str(where, ".", key);
  if (!p || !p->is_object() || p->size() != 1)
    throw Error(str(at, ": expected {\"String\": ...} or {\"Regex\": ...}"));
  const auto it = p->begin();
  if (!it.value().is_string()) throw Error(str(at, ": the pattern must be a string"));
  const std::string pattern = it.value().template get<std::string>();
  if (it.key() == "String") return std::make_unique<Regex>(pattern, true, at, any_bytes);
  if (it.key() == "Regex") return std::make_unique<Regex>(pattern, false, at, any_bytes);
  throw Error(str(at, ": pattern kind \"", it.key(), "\" is not supported"));
}

template <class J>
void parse_normalizer(const J& j, const std::string& where, std::vector<NormalizerStep>& out) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where);
  if (type == "Sequence") {
    check_keys(j, {"type", "normalizers"}, where);
    const J& list = get_array(j, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i)
      parse_normalizer(list[i], str(where, ".normalizers[", i, "]"), out);
    return;
  }
  NormalizerStep step{};
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    check_keys(j, {"type"}, where);
    step.kind = type == "NFC"    ? NormalizerStep::NFC
                : type == "NFD"  ? NormalizerStep::NFD
                : type == "NFKC" ? NormalizerStep::NFKC
                                 : NormalizerStep::NFKD;
  } else if (type == "Prepend") {
    check_keys(j, {"type", "prepend"}, where);
    step.kind = NormalizerStep::Prepend;
    step.text = get_string(j, "prepend", where);
  } else if (type == "Replace") {
    check_keys(j, {"type", "pattern", "content"}, where);
    step.kind = NormalizerStep::Replace;
    step.regex = parse_pattern(j, "pattern", where);
    step.text = get_string(j, "content", where);
  } else if (type == "Strip") {
    check_keys(j, {"type", "strip_left", "strip_right"}, where);
    step.kind = NormalizerStep::Strip;
    step.strip_left = get_bool(j, "strip_left", true, where);
    step.strip_right = get_bool(j, "strip_right", true, where);
  } else {
    throw Error(str(where, ": normalizer type \"", type, "\" is not supported"));
  }
  out.push_back(std::move(step));
}

template <class J>
Behavior parse_behavior(const J& j, const std::string& where) {
  const std::string b = get_string(j, "behavior", where);
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw Error(str(where, ": split behavior \"", b, "\" is not supported"));
}

// GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

template <class J>
void parse_pre_tokenizer(const J& j, const std::string& where, std::vector<PreTokenizerStep>& out) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where);
  if (type == "Sequence") {
    check_keys(j, {"type", "pretokenizers"}, where);
    const J& list = get_array(j, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      parse_pre_tokenizer(list[i], str(where, ".pretokenizers[", i, "]"), out);
    }
    return;
  }
  PreTokenizerStep step{};
  if (type == "Split") {
    check_keys(j, {"type", "pattern", "behavior", "invert"}, where);
    step.kind = PreTokenizerStep::Split;
    step.regex = parse_pattern(j, "pattern", where);
    step.behavior = parse_behavior(j, where);
    step.invert = get_bool(j, "invert", false, where);
    if (!step.regex->literal()) step.fast = recognize_fast_pattern(step.regex->pattern());
  } else if (type == "ByteLevel") {
    check_keys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where);
    step.kind = PreTokenizerStep::ByteLevel;
    step.add_prefix_space = get_bool(j, "add_prefix_space", true, where);
    if (get_bool(j, "use_regex", true, where))
      step.regex = std::make_unique<Regex>(kGpt2Pattern, false, where);
  } else if (type == "Digits") {
    check_keys(j, {"type", "individual_digits"}, where);
    step.kind = PreTokenizerStep::Digits;
    step.individual_digits = get_bool(j, "individual_digits", false, where);
  } else {
    throw Error(str(where, ": pre-tokenizer type \"", type, "\" is not supported"));
  }
  out.push_back(std::move(step));
}

// Prefix and suffix ids of a post-processor, applied with add_special_tokens.
template <class J>
void parse_post_processor(const J& j, const std::string& where, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where);
  if (type == "ByteLevel") {  // offsets only
    check_keys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where);
  } else if (type == "Sequence") {
    check_keys(j, {"type", "processors"}, where);
    const J& list = get_array(j, "processors", where);
    for (size_t i = 0; i < list.size(); ++i) {
      std::vector<int32_t> p, s;
      parse_post_processor(list[i], str(where, ".processors[", i, "]"), p, s);
      prefix.insert(prefix.begin(), p.begin(), p.end());  // a later processor wraps the earlier result
      suffix.insert(suffix.end(), s.begin(), s.end());
    }
  } else if (type == "TemplateProcessing") {
    check_keys(j, {"type", "single", "pair", "special_tokens"}, where);
    const J& single = get_array(j, "single", where);
    const J* specials = field(j, "special_tokens");
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string at = str(where, ".single[", i, "]");
      const J& item = single[i];
      if (!item.is_object() || item.size() != 1)
        throw Error(str(at, ": expected {\"SpecialToken\"|\"Sequence\": ...}"));
      if (item.contains("Sequence")) {
        const std::string seq = get_string(item["Sequence"], "id", at);
        if (seq != "A")
          throw Error(str(at, ": a single-sequence template can only hold sequence A, not ", seq));
        if (seen_sequence) throw Error(str(at, ": sequence A appears twice"));
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = get_string(item["SpecialToken"], "id", at);
        if (!specials || !specials->contains(name)) {
          throw Error(str(at, ": special token \"", name, "\" is not in special_tokens"));
        }
        const J& ids = get_array((*specials)[name], "ids", str(where, ".special_tokens.", name));
        for (const J& id : ids)
          (seen_sequence ? suffix : prefix)
              .push_back(token_id(id, str(where, ".special_tokens.", name, ".ids")));
      } else {
        throw Error(str(at, ": template item \"", item.begin().key(), "\" is not supported"));
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    if (type == "BertProcessing") {
      check_keys(j, {"type", "sep", "cls"}, where);
    } else {
      check_keys(j, {"type", "sep", "cls", "trim_offsets", "add_prefix_space"}, where);
    }
    const J& cls = get_array(j, "cls", where);
    const J& sep = get_array(j, "sep", where);
    if (cls.size() != 2 || sep.size() != 2) throw Error(str(where, ": cls and sep must be [token, id]"));
    prefix.push_back(token_id(cls[1], str(where, ".cls[1]")));
    suffix.push_back(token_id(sep[1], str(where, ".sep[1]")));
  } else {
    throw Error(str(where, ": post-processor type \"", type, "\" is not supported"));
  }
}

template <class J>
void parse_decoder(const J& j, const std::string& where, std::vector<DecoderStep>& out) {
  const std::string type = type_of(j, where);
  if (type == "Sequence") {
    check_keys(j, {"type", "decoders"}, where);
    const J& list = get_array(j, "decoders", where);
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], str(where, ".decoders[", i, "]"), out);
    return;
  }
  DecoderStep step{};
  if (type == "ByteLevel") {
    check_keys(j, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where);
    step.kind = DecoderStep::ByteLevel;
  } else if (type == "ByteFallback") {
    check_keys(j, {"type"}, where);
    step.kind = DecoderStep::ByteFallback;
  } else if (type == "Fuse") {
    check_keys(j, {"type"}, where);
    step.kind = DecoderStep::Fuse;
  } else if (type == "Strip") {
    check_keys(j, {"type", "content", "start", "stop"}, where);
    step.kind = DecoderStep::Strip;
    step.text = get_string(j, "content", where);
    size_t n = 0;
    for (size_t i = 0; i < step.text.size(); ++n) utf8_next(step.text, i);
    if (n != 1) throw Error(str(where, ": Strip content must be one character"));
    step.strip_start = get_count(j, "start", 0, where);
    step.strip_stop = get_count(j, "stop", 0, where);
  } else if (type == "Replace") {
    check_keys(j, {"type", "pattern", "content"}, where);
    step.kind = DecoderStep::Replace;
    // After ByteFallback or ByteLevel the tokens are raw bytes, not necessarily UTF-8.
    step.regex = parse_pattern(j, "pattern", where, /*any_bytes=*/true);
    step.text = get_string(j, "content", where);
  } else {
    throw Error(str(where, ": decoder type \"", type, "\" is not supported"));
  }
  out.push_back(std::move(step));
}

// A decoder that maps each token on its own, so decode(ids) is the concatenation of the tokens' bytes.
bool decoder_is_per_token(const std::vector<DecoderStep>& steps) {
  bool after_byte_level = false, after_byte_fallback = false;
  for (const DecoderStep& s : steps) {
    switch (s.kind) {
      case DecoderStep::Fuse:
      case DecoderStep::Strip:
        return false;
      // ByteLevel joins every token, ByteFallback consecutive byte tokens: a step after them that reads
      // characters would see the joined text (a character may span tokens), not single tokens.
      case DecoderStep::ByteLevel:
        if (after_byte_fallback) return false;
        after_byte_level = true;
        break;
      case DecoderStep::ByteFallback:
        if (after_byte_level) return false;
        after_byte_fallback = true;
        break;
      case DecoderStep::Replace:
        if (after_byte_level || after_byte_fallback) return false;
        break;
    }
  }
  return !steps.empty();
}

bool is_upper_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

template <class J>
void parse_model(const J& j, const std::string& where, BpeModel& m, std::vector<std::string>& id_to_token) {
  const std::string type = type_of(j, where);
  if (type != "BPE") throw Error(str(where, ": model type \"", type, "\" is not supported (only BPE)"));
  check_keys(j,
             {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
              "byte_fallback", "ignore_merges", "vocab", "merges"},
             where);
  if (const J* d = field(j, "dropout"); d && !(d->is_number() && d->template get<double>() == 0.0)) {
    throw Error(str(where, ": field \"dropout\" is not supported (must be null)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const J* v = field(j, key); v && !(v->is_string() && v->template get<std::string>().empty())) {
      throw Error(str(where, ": field \"", key, "\" is not supported (must be null or empty)"));
    }
  }
  m.fuse_unk = get_bool(j, "fuse_unk", false, where);
  m.byte_fallback = get_bool(j, "byte_fallback", false, where);
  m.ignore_merges = get_bool(j, "ignore_merges", false, where);

  const J* vocab = field(j, "vocab");
  if (!vocab || !vocab->is_object()) throw Error(str(where, ": field \"vocab\" must be an object"));
  const ByteLevelMap& bl = byte_level_map();
  m.vocab = StringIdMap(vocab->size());
  std::fill(std::begin(m.byte_ids), std::end(m.byte_ids), -1);
  std::fill(std::begin(m.byte_fallback_ids), std::end(m.byte_fallback_ids), -1);
  StringIdMap as_written(m.byte_level ? vocab->size() : 16);  // byte-level: tokens as written, for merges
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string& token = it.key();
    const int32_t id = token_id(it.value(), str(where, ".vocab: the id of token \"", token, "\""));
    if (static_cast<size_t>(id) >= id_to_token.size()) id_to_token.resize(id + 1);
    if (!id_to_token[id].empty()) throw Error(str(where, ".vocab: id ", id, " is given twice"));
    id_to_token[id] = token;
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' && is_upper_hex(token[3]) &&
        is_upper_hex(token[4])) {  // Hugging Face looks up format!("<{b:#04X}>")
      m.byte_fallback_ids[std::stoi(token.substr(3, 2), nullptr, 16)] = id;
    }
    if (m.byte_level) {
      as_written.insert(token, id);
      if (auto bytes = bl.to_bytes(token)) {
        m.vocab.insert(*bytes, id);
        if (bytes->size() == 1) m.byte_ids[static_cast<unsigned char>((*bytes)[0])] = id;
      }
    } else {
      m.vocab.insert(token, id);
    }
  }
  if (field(j, "unk_token")) {
    const std::string u = get_string(j, "unk_token", where);
    const int32_t* id = (m.byte_level ? as_written : m.vocab).find(u);
    if (!id) throw Error(str(where, ": unk_token \"", u, "\" is not in the vocabulary"));
    m.unk_id = *id;
  }

  const J& merges = get_array(j, "merges", where);
  const StringIdMap& lookup = m.byte_level ? as_written : m.vocab;
  m.merges.reserve(merges.size());
  std::string a, b;
  for (size_t i = 0; i < merges.size(); ++i) {
    const J& mj = merges[i];
    if (mj.is_string()) {
      const std::string& s = mj.template get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        throw Error(str(where, ".merges[", i, "]: \"", s, "\" is not two tokens separated by one space"));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
      a = mj[0].template get<std::string>();
      b = mj[1].template get<std::string>();
    } else {
      throw Error(str(where, ".merges[", i, "]: expected \"a b\" or [\"a\", \"b\"]"));
    }
    const int32_t* ia = lookup.find(a);
    const int32_t* ib = lookup.find(b);
    const int32_t* inew = lookup.find(a + b);
    if (!ia || !ib || !inew) {
      throw Error(str(where, ".merges[", i, "]: \"",
                      !ia   ? a
                      : !ib ? b
                            : a + b,
                      "\" is not in the vocabulary"));
    }
    m.merges.insert(*ia, *ib, PairMap::Merge{static_cast<int32_t>(i), *inew});
  }
}

template <class J>
AddedToken parse_added_token(const J& j, const std::string& where) {
  if (!j.is_object()) throw Error(str(where, ": expected an object"));
  check_keys(j, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"}, where);
  AddedToken t;
  const J* id = field(j, "id");
  if (!id) throw Error(str(where, ": missing field \"id\""));
  t.id = token_id(*id, str(where, ": field \"id\""));
  t.content = get_string(j, "content", where);
  t.special = get_bool(j, "special", false, where);
  t.single_word = get_bool(j, "single_word", false, where);
  t.lstrip = get_bool(j, "lstrip", false, where);
  t.rstrip = get_bool(j, "rstrip", false, where);
  t.normalized = get_bool(j, "normalized", !t.special, where);
  return t;
}

// bos_token / eos_token of tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> config_token(const Json& config, const char* key, const std::string& where) {
  const Json* v = field(config, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->template get<std::string>();
  if (v->is_object()) return get_string(*v, "content", str(where, ".", key));
  throw Error(str(where, ": field \"", key, "\" must be a string or an AddedToken object"));
}

}  // namespace

template <class J>
std::shared_ptr<TokenizerImpl> build(const J& tj, const Json* config, const std::string& where) {
  auto impl = std::make_shared<TokenizerImpl>();
  TokenizerImpl& t = *impl;
  t.where = where;
  t.instance = g_next_instance.fetch_add(1);
  if (!tj.is_object()) throw Error(str(where, ": expected a JSON object"));
  check_keys(tj,
             {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "model",
              "post_processor", "decoder"},
             where);
  for (const char* key : {"truncation", "padding"}) {
    if (field(tj, key)) throw Error(str(where, ": field \"", key, "\" is not supported (must be null)"));
  }
  if (const J* n = field(tj, "normalizer")) parse_normalizer(*n, str(where, ": normalizer"), t.normalizer);
  if (const J* p = field(tj, "pre_tokenizer")) {
    parse_pre_tokenizer(*p, str(where, ": pre_tokenizer"), t.pre_tokenizer);
  }
  for (size_t i = 0; i < t.pre_tokenizer.size(); ++i) {
    if (t.pre_tokenizer[i].kind == PreTokenizerStep::ByteLevel && i + 1 != t.pre_tokenizer.size()) {
      throw Error(
          str(where, ": pre_tokenizer: a ByteLevel pre-tokenizer followed by others is not supported"));
    }
  }
  t.model.byte_level = !t.pre_tokenizer.empty() && t.pre_tokenizer.back().kind == PreTokenizerStep::ByteLevel;

  const J* model = field(tj, "model");
  if (!model) throw Error(str(where, ": missing field \"model\""));
  std::vector<std::string> id_to_token;
  parse_model(*model, str(where, ": model"), t.model, id_to_token);

  // Added tokens: their ids override the model's; the two matchers (raw text, normalized text).
  if (const J* added = field(tj, "added_tokens")) {
    if (!added->is_array()) throw Error(str(where, ": field \"added_tokens\" must be a list"));
    for (size_t i = 0; i < added->size(); ++i) {
      t.added.push_back(parse_added_token((*added)[i], str(where, ": added_tokens[", i, "]")));
    }
  }
  int32_t max_id = static_cast<int32_t>(id_to_token.size()) - 1;
  for (const AddedToken& a : t.added) max_id = std::max(max_id, a.id);
  t.vocab_size = max_id + 1;
  t.added_index.assign(t.vocab_size, -1);
  for (size_t i = 0; i < t.added.size(); ++i) t.added_index[t.added[i].id] = static_cast<int32_t>(i);
  std::vector<size_t> raw_which, norm_which;
  std::vector<std::string> raw_patterns, norm_patterns;
  for (size_t i = 0; i < t.added.size(); ++i) {
    if (t.added[i].normalized) {
      norm_which.push_back(i);
      norm_patterns.push_back(t.normalize(t.added[i].content));
    } else {
      raw_which.push_back(i);
      raw_patterns.push_back(t.added[i].content);
    }
  }
  t.raw_matcher.build(t.added, raw_which, raw_patterns);
  t.normalized_matcher.build(t.added, norm_which, norm_patterns);

  // id -> token as written.
  t.present.assign(t.vocab_size, 0);
  t.token_off.assign(t.vocab_size + 1, 0);
  for (int32_t id = 0; id < t.vocab_size; ++id) {
    t.token_off[id] = static_cast<uint32_t>(t.token_arena.size());
    if (t.added_index[id] >= 0) {
      t.token_arena += t.added[t.added_index[id]].content;
      t.present[id] = 1;
    } else if (static_cast<size_t>(id) < id_to_token.size() && !id_to_token[id].empty()) {
      t.token_arena += id_to_token[id];
      t.present[id] = 1;
    }
  }
  t.token_off[t.vocab_size] = static_cast<uint32_t>(t.token_arena.size());
  if (t.model.byte_level) {
    for (int32_t id = 0; id < static_cast<int32_t>(id_to_token.size()); ++id) {
      if (!id_to_token[id].empty() && !byte_level_map().to_bytes(id_to_token[id])) {
        t.unmapped_tokens.insert(id_to_token[id], id);
      }
    }
  }

  if (const J* p = field(tj, "post_processor")) {
    parse_post_processor(*p, str(where, ": post_processor"), t.prefix_ids, t.suffix_ids);
  }
  if (const J* d = field(tj, "decoder")) {
    t.has_decoder = true;
    parse_decoder(*d, str(where, ": decoder"), t.decoder);
  }
  t.per_token_decoder = decoder_is_per_token(t.decoder);
  if (t.per_token_decoder) {
    t.token_bytes_off.assign(t.vocab_size + 1, 0);
    for (int32_t id = 0; id < t.vocab_size; ++id) {
      t.token_bytes_off[id] = static_cast<uint32_t>(t.token_bytes_arena.size());
      if (!t.present[id]) continue;
      if (t.added_index[id] >= 0) {
        t.token_bytes_arena += t.added[t.added_index[id]].content;
      } else {
        for (const std::string& s : t.run_decoder({std::string(t.token(id))})) t.token_bytes_arena += s;
      }
    }
    t.token_bytes_off[t.vocab_size] = static_cast<uint32_t>(t.token_bytes_arena.size());
  }

  // tokenizer_config.json: bos/eos, and add_bos_token/add_eos_token which (as transformers'
  // LlamaTokenizerFast does) replace the post-processor's special tokens.
  if (config) {
    const std::string cw = str(where, " (tokenizer_config.json)");
    if (!config->is_object()) throw Error(str(cw, ": expected a JSON object"));
    if (get_bool(*config, "add_prefix_space", false, cw)) {
      throw Error(str(cw, ": field \"add_prefix_space\" = true is not supported"));
    }
    if (get_bool(*config, "split_special_tokens", false, cw)) {
      throw Error(str(cw, ": field \"split_special_tokens\" = true is not supported"));
    }
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      const auto name = config_token(*config, key, cw);
      if (!name) return std::nullopt;
      for (const AddedToken& a : t.added)
        if (a.content == *name) return a.id;
      const int32_t* id = t.model.byte_level ? nullptr : t.model.vocab.find(*name);
      if (!id && t.model.byte_level) {
        if (auto bytes = byte_level_map().to_bytes(*name)) id = t.model.vocab.find(*bytes);
      }
      if (!id) throw Error(str(cw, ": ", key, " \"", *name, "\" is not a token of the tokenizer"));
      return *id;
    };
    t.bos = resolve("bos_token");
    t.eos = resolve("eos_token");
    const std::string cls =
        field(*config, "tokenizer_class") ? get_string(*config, "tokenizer_class", cw) : "";
    const bool llama_class = cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer";
    const bool has_add_bos = field(*config, "add_bos_token") != nullptr;
    const bool has_add_eos = field(*config, "add_eos_token") != nullptr;
    if (llama_class || has_add_bos || has_add_eos) {
      const bool add_bos = get_bool(*config, "add_bos_token", llama_class, cw);
      const bool add_eos = get_bool(*config, "add_eos_token", false, cw);
      if (add_bos && !t.bos) throw Error(str(cw, ": add_bos_token is true but there is no bos_token"));
      if (add_eos && !t.eos) throw Error(str(cw, ": add_eos_token is true but there is no eos_token"));
      t.prefix_ids.clear();
      t.suffix_ids.clear();
      if (add_bos) t.prefix_ids.push_back(*t.bos);
      if (add_eos) t.suffix_ids.push_back(*t.eos);
    }
  }
  for (int32_t id : t.prefix_ids) t.check_id(id);
  for (int32_t id : t.suffix_ids) t.check_id(id);
  return impl;
}

void TokenizerImpl::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size || !present[id]) {
    throw Error(str(where, ": token id ", id, " is not in the vocabulary (size ", vocab_size, ")"));
  }
}

}  // namespace detail

Tokenizer Tokenizer::from_json(const Json& tokenizer_json, const Json* tokenizer_config) {
  return from_json(tokenizer_json, tokenizer_config, "tokenizer.json");
}

Tokenizer Tokenizer::from_json(const Json& tokenizer_json, const Json* tokenizer_config,
                               const std::string& where) {
  return Tokenizer(detail::build(tokenizer_json, tokenizer_config, where));
}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  const std::string json_path = is_dir ? (fs::path(path) / "tokenizer.json").string() : path;
  const std::string config_path = (fs::path(json_path).parent_path() / "tokenizer_config.json").string();
  if (!file_exists(json_path)) {
    throw Error(
        str("no tokenizer at ", path, is_dir ? " (the folder has no tokenizer.json)" : " (no such file)"));
  }
  // nlohmann::json (std::map objects), not ctm::Json: ordered_json inserts keys in linear time, which for a
  // vocabulary of 150k tokens takes minutes.
  nlohmann::json tj;
  try {
    const std::string text = read_file(json_path);
    check_json_depth(text, json_path);
    tj = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(json_path, ": invalid JSON: ", e.what()));
  }
  if (file_exists(config_path)) {
    const Json config = read_json_file(config_path);
    return Tokenizer(detail::build(tj, &config, json_path));
  }
  return Tokenizer(detail::build(tj, static_cast<const Json*>(nullptr), json_path));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  impl_->encode(text, add_special_tokens, out);
  return out;
}

void Tokenizer::encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
  impl_->encode(text, add_special_tokens, out);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  return impl_->decode(ids);
}

int32_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}
std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const detail::TokenizerImpl& t = *impl_;
  for (const detail::AddedToken& a : t.added)
    if (a.content == token) return a.id;
  if (!t.model.byte_level) {
    if (const int32_t* id = t.model.vocab.find(token)) return *id;
    return std::nullopt;
  }
  if (auto bytes = detail::byte_level_map().to_bytes(token)) {
    if (const int32_t* id = t.model.vocab.find(*bytes)) return *id;
  }
  if (const int32_t* id = t.unmapped_tokens.find(token)) return *id;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size || !impl_->present[id]) return std::nullopt;
  return std::string(impl_->token(id));
}

bool Tokenizer::is_special(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return false;
  const int32_t k = impl_->added_index[id];
  return k >= 0 && impl_->added[k].special;
}

std::optional<std::string> Tokenizer::token_bytes(int32_t id) const {
  const detail::TokenizerImpl& t = *impl_;
  if (!t.per_token_decoder) return std::nullopt;
  t.check_id(id);
  return t.token_bytes_arena.substr(t.token_bytes_off[id], t.token_bytes_off[id + 1] - t.token_bytes_off[id]);
}

}  // namespace ctm::text
