// Fuzz target: Tokenizer::load on a fuzzed tokenizer.json, then encoding and decoding with what loaded.
// Input: tokenizer.json, optionally followed by a NUL byte and a text to encode (a JSON text holds no raw
// NUL, so the split is unambiguous; without one the first bytes of the JSON itself are encoded). The input
// size modulo 4 picks the tokenizer_config.json beside it: none, strings, a Llama class that adds BOS, or
// AddedToken objects.
// A tokenizer that loads must: encode fixed strings and the fuzzed one (ctm::Error only for text that is
// not UTF-8), give ids inside its vocabulary that decode, decode any id list (out-of-range ids: ctm::Error),
// and its IncrementalDecoder must yield exactly decode() of the same ids. Anything other than ctm::Error
// escaping is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctm/core/error.hpp"
#include "ctm/text/tokenizer.hpp"
#include "fuzz_util.hpp"

namespace {

using ctm::fuzz::require;
using ctm::text::Tokenizer;

constexpr const char* kConfigs[] = {
    nullptr,
    R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": false})",
    R"({"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"})",
    R"({"bos_token": {"content": "<s>"}, "eos_token": {"content": "a"}, "add_eos_token": true})",
};

constexpr const char* kTexts[] = {
    "",
    "Hello world! 123 4567",
    "Question: What is 2+2?\nAnswer: 4.\n\n  \t tabs\r\n",
    "<|begin_of_text|><s> </s><|end_of_text|>a",
    "caf\xC3\xA9 na\xC3\xAFve \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 \xE2\x80\xAF\xC2\xA0",
    "\xFF\xFE not UTF-8",
};

// Whether the decode of each prefix of ids begins with the decode of the one before: the condition under
// which a whole-sequence decoder streams exactly (tokenizer.hpp, IncrementalDecoder).
bool prefixes_grow(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string before;
  for (size_t n = 1; n <= ids.size(); ++n) {
    const std::string now = tok.decode(std::vector<int32_t>(ids.begin(), ids.begin() + n));
    if (now.compare(0, before.size(), before) != 0) return false;
    before = now;
  }
  return true;
}

// decode(ids) of a tokenizer that loaded: exact bytes, and the incremental decoder agrees with it.
void check_decode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string full;
  try {
    full = tok.decode(ids);
  } catch (const ctm::Error&) {
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size() || !tok.id_to_token(id)) return;  // an id not in the vocabulary
    require(false, "decode() of ids in the vocabulary throws");
  }
  // Streaming with a whole-sequence decoder decodes every prefix again (quadratic): the first ids suffice.
  const std::vector<int32_t> head(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 64));
  if (head.size() < ids.size()) full = tok.decode(head);
  ctm::text::IncrementalDecoder inc(tok);
  std::string pieces;
  for (int32_t id : head) pieces += inc.push(id);
  pieces += inc.flush();
  if (pieces != full)
    require(!tok.token_bytes(head.front()) && !prefixes_grow(tok, head),
            "IncrementalDecoder does not yield decode() of the same ids");
}

void check_encode(const Tokenizer& tok, std::string_view text) {
  for (bool special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, special);
    } catch (const ctm::Error&) {
      continue;  // text that is not UTF-8 (or a regex failing on it): an error naming it
    }
    for (int32_t id : ids)
      require(id >= 0 && id < tok.vocab_size() && tok.id_to_token(id),
              "encode() gives an id not in the vocabulary");
    check_decode(tok, ids);
  }
}

// Ids spread over and around the vocabulary, from the text's bytes.
std::vector<int32_t> ids_from(std::string_view bytes, int32_t vocab_size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < bytes.size() && ids.size() < 16; i += 2) {
    const int32_t raw = static_cast<uint8_t>(bytes[i]) << 8 | static_cast<uint8_t>(bytes[i + 1]);
    ids.push_back(raw % (vocab_size + 2) - 1);
  }
  return ids;
}

void check_tokenizer(const Tokenizer& tok, std::string_view text) {
  require(tok.vocab_size() > 0, "a tokenizer with an empty vocabulary loaded");
  if (tok.bos_id()) require(tok.id_to_token(*tok.bos_id()).has_value(), "bos_id is not a token");
  if (tok.eos_id()) require(tok.id_to_token(*tok.eos_id()).has_value(), "eos_id is not a token");
  for (const char* fixed : kTexts) check_encode(tok, fixed);
  check_encode(tok, text);
  check_decode(tok, ids_from(text, tok.vocab_size()));
  for (int32_t id = 0; id < tok.vocab_size() && id < 64; ++id) {
    const auto token = tok.id_to_token(id);
    if (!token) continue;
    require(tok.token_to_id(*token).has_value(), "token_to_id() does not find a token of the vocabulary");
    try {
      tok.token_bytes(id);
    } catch (const ctm::Error&) {
      require(false, "token_bytes() of a token in the vocabulary throws");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ctm::fuzz::ScratchDir dir;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? json.substr(0, 256) : input.substr(nul + 1);
  const std::string path = dir.write("tokenizer.json", json);
  if (const char* config = kConfigs[size % 4])
    dir.write("tokenizer_config.json", config);
  else
    dir.remove("tokenizer_config.json");
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(Tokenizer::load(path));
  } catch (const ctm::Error&) {
    return 0;
  }
  check_tokenizer(*tok, text);
  return 0;
}
