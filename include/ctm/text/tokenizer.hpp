// Hugging Face `tokenizer.json` tokenizers (byte-level BPE: Llama-3, Qwen2.5/3, DeepSeek-V3, and ctm's own),
// reproduced id for id: added tokens, normalizers, pre-tokenizers, the BPE model, post-processors, decoders.
// Anything the file asks for that is not implemented is a ctm::Error naming the field, never a silent
// difference.
//
// Differences from the Hugging Face library, on purpose:
//  - decode() returns the exact bytes of the tokens: where the ids cut a UTF-8 character (or <0xXX> byte
//  tokens
//    do not form one), the bytes are returned as they are instead of U+FFFD, and no "clean up" rewriting is
//    done.
//  - encode() of text that is not valid UTF-8 throws ctm::Error naming the byte offset (Python strings cannot
//    hold such text, so there is nothing to reproduce).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm::text {

namespace detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // A folder (tokenizer.json [+ tokenizer_config.json]) or a tokenizer.json file (a tokenizer_config.json
  // beside it is read too).
  static Tokenizer load(const std::string& path);
  static Tokenizer from_json(const ctm::Json& tokenizer_json, const ctm::Json* tokenizer_config = nullptr);
  // `where` names the source in error messages.
  static Tokenizer from_json(const ctm::Json& tokenizer_json, const ctm::Json* tokenizer_config,
                             const std::string& where);

  // Thread-safe: each thread keeps its own word cache and regex scratch space.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // Appends to out (no allocation once out and the caches are warm).
  void encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const;
  std::string decode(const std::vector<int32_t>& ids) const;  // exact bytes, no clean-up rewriting

  int32_t vocab_size() const;  // largest id + 1, added tokens included
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;  // added tokens first, then the model's
  std::optional<std::string> id_to_token(int32_t id) const;          // the token as written in tokenizer.json
  bool is_special(int32_t id) const;                                 // an added token marked "special"

  // The bytes one token contributes to decode() when the decoder works token by token (ByteLevel,
  // ByteFallback and Replace before them); std::nullopt for decoders that need the whole sequence (Fuse,
  // Strip).
  std::optional<std::string> token_bytes(int32_t id) const;

  const detail::TokenizerImpl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::TokenizerImpl> impl_;  // immutable after loading: copies are cheap
};

// Yields text as tokens arrive, never splitting a UTF-8 character; the concatenation of every push() and the
// final flush() equals tok.decode(all ids). For decoders that need the whole sequence (token_bytes() is
// nullopt) that holds when the decode of every prefix of the ids begins with the decode of the shorter ones:
// true of the real chains (Llama-2's Replace, ByteFallback, Fuse, Strip), not of a Replace whose pattern
// spans tokens (Hugging Face's DecodeStream assumes the same).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok);
  std::string push(int32_t id);  // text completed by this token (may be "")
  std::string flush();           // whatever is pending (an incomplete character at the end, as its bytes)

 private:
  const Tokenizer& tok_;
  bool per_token_;            // the decoder works token by token: no need to re-decode the prefix
  std::string pending_;       // bytes not yet returned (an incomplete UTF-8 character)
  std::vector<int32_t> ids_;  // every id so far (whole-sequence decoders only)
  size_t emitted_ = 0;        // bytes of decode(ids_) already returned (whole-sequence decoders only)
};

// Length of the longest prefix of bytes that does not end inside a UTF-8 character: a trailing lead byte with
// fewer continuation bytes than it announces is held back; anything else (even invalid bytes) is released.
size_t utf8_complete_prefix(std::string_view bytes);

}  // namespace ctm::text
