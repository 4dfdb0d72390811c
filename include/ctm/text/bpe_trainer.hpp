// A byte-level BPE trainer: corpus -> vocabulary of a given size + merges, written as a complete Hugging Face
// tokenizer.json (ByteLevel pre-tokenizer with the Llama-3 regex, or Qwen's single-digit variant; special
// tokens as added tokens; ByteLevel decoder) that Tokenizer::from_json and the Hugging Face library read
// back. Deterministic: the same texts and options give the same file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/io/json.hpp"

namespace ctm::text {

struct BpeTrainerOptions {
  int32_t vocab_size = 512;  // total, the 256 byte tokens and the special tokens included
  std::vector<std::string>
      special_tokens;        // e.g. "<|begin_of_text|>", "<|end_of_text|>": ids after the merges
  bool split_digits = true;  // every digit its own pre-token (so its own token)
  // Optional: prepend bos_token when encoding with add_special_tokens (TemplateProcessing). bos_token and
  // eos_token are added to special_tokens when missing; they go into make_tokenizer_config().
  std::string bos_token;
  std::string eos_token;
  bool add_bos_token = false;
};

ctm::Json train_bpe(const std::vector<std::string>& texts,
                    const BpeTrainerOptions& opts);  // a full tokenizer.json

// The tokenizer_config.json that goes with it (bos/eos tokens, add_bos_token/add_eos_token).
ctm::Json make_tokenizer_config(const BpeTrainerOptions& opts);

// The pre-tokenizer regexes ctm's trainer writes (also those of Llama-3 and Qwen2.5).
extern const char* const kLlama3Pattern;       // digits in groups of up to 3
extern const char* const kSingleDigitPattern;  // every digit alone

}  // namespace ctm::text
