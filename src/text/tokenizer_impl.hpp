// The loaded tokenizer: every component of tokenizer.json in a form ready for encoding (see tokenizer.cpp for
// loading, encode.cpp for the encoding pipeline, decode.cpp for decoding).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bpe.hpp"
#include "fast_pretokenizer.hpp"
#include "regex.hpp"

namespace ctm::text::detail {

// GPT-2's ByteLevel mapping: every byte is a printable character (bytes 33-126, 161-172, 174-255 stand for
// themselves, the rest for U+0100 onwards).
struct ByteLevelMap {
  uint32_t byte_to_char[256];
  int16_t char_to_byte[0x144];  // -1: the character does not stand for a byte
  ByteLevelMap();
  // The bytes a token stands for, or nullopt when it has a character outside the mapping.
  std::optional<std::string> to_bytes(std::string_view token) const;
  std::string to_chars(std::string_view bytes) const;
};
const ByteLevelMap& byte_level_map();

// Every match of re in s replaced by `with` (Oniguruma's iteration of matches).
std::string replace_all_matches(const Regex& re, std::string_view s, std::string_view with);

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Leftmost-longest matching of a set of added tokens (Hugging Face's Aho-Corasick, LeftmostLongest), then the
// single_word / lstrip / rstrip rules.
class AddedTokenMatcher {
 public:
  void build(const std::vector<AddedToken>& tokens, const std::vector<size_t>& which,
             const std::vector<std::string>& patterns);
  bool empty() const { return patterns_.empty(); }
  struct Piece {
    int32_t id;  // the added token, or -1 for the text between matches
    size_t start, end;
  };
  // Hugging Face's AddedVocabulary::find_matches: the pieces of s, in order, covering it.
  void find_pieces(std::string_view s, std::vector<Piece>& out) const;

 private:
  std::vector<std::string> patterns_;
  std::vector<const AddedToken*> tokens_;
  // A byte trie of the patterns: node 0 is the root; pattern >= 0 where a pattern ends.
  struct Node {
    int32_t pattern = -1;
    std::vector<std::pair<unsigned char, int32_t>> next;
  };
  std::vector<Node> trie_;
  int32_t root_next_[256];  // the root's children, for the scan over bytes that start no pattern
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct NormalizerStep {
  enum Kind { NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip } kind;
  std::string text;              // Prepend: the prefix; Replace: the replacement
  std::unique_ptr<Regex> regex;  // Replace
  bool strip_left = false, strip_right = false;
};

struct PreTokenizerStep {
  enum Kind { Split, Digits, ByteLevel } kind;
  std::unique_ptr<Regex> regex;          // Split; ByteLevel with use_regex
  FastPattern fast = FastPattern::None;  // a hand-written matcher for `regex`
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  bool individual_digits = false;
  bool add_prefix_space = false;
};

struct DecoderStep {
  enum Kind { ByteLevel, ByteFallback, Fuse, Strip, Replace } kind;
  std::unique_ptr<Regex> regex;  // Replace
  std::string text;              // Replace: the replacement; Strip: the character
  size_t strip_start = 0, strip_stop = 0;
};

struct TokenizerImpl {
  std::string where;  // the source, for error messages
  uint64_t instance = 0;

  std::vector<AddedToken> added;         // as listed
  AddedTokenMatcher raw_matcher;         // normalized == false: matched on the raw text
  AddedTokenMatcher normalized_matcher;  // normalized == true: matched on the normalized text

  std::vector<NormalizerStep> normalizer;  // empty: none
  std::vector<PreTokenizerStep> pre_tokenizer;
  BpeModel model;

  std::vector<int32_t> prefix_ids, suffix_ids;  // added by the post-processor with add_special_tokens

  bool has_decoder = false;
  std::vector<DecoderStep> decoder;
  bool per_token_decoder = false;
  std::string token_bytes_arena;          // per_token_decoder: what each id decodes to
  std::vector<uint32_t> token_bytes_off;  // size vocab_size + 1

  // id -> token as written (model tokens; added tokens override); present[id] false for holes.
  std::string token_arena;
  std::vector<uint32_t> token_off;
  std::vector<uint8_t> present;
  std::vector<int32_t> added_index;  // id -> index in `added`, -1 for model tokens
  StringIdMap unmapped_tokens{16};   // byte-level model: tokens not made of byte characters (unreachable)

  int32_t vocab_size = 0;
  std::optional<int32_t> bos, eos;

  // encode.cpp
  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;
  std::string normalize(std::string_view s) const;
  // decode.cpp
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string_view token(int32_t id) const {
    return std::string_view(token_arena).substr(token_off[id], token_off[id + 1] - token_off[id]);
  }
  std::vector<std::string> run_decoder(std::vector<std::string> tokens) const;
  void check_id(int32_t id) const;
};

}  // namespace ctm::text::detail
