// Language-model training examples from text: which tokens are in the loss, packed few-shot sequences for
// pretraining, prompt + completion pairs for SFT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ctm/data/dataset.hpp"
#include "ctm/text/tokenizer.hpp"
#include "ctm/train/batching.hpp"

namespace ctm::train {

struct TextPiece {
  std::string text;
  bool is_target = false;  // its tokens are in the loss
};

// Tokenizes the pieces' concatenation as ONE text, so the tokens are exactly those a prompt holding the same
// text gets (a BPE merge may cross a piece boundary, e.g. ".\n\n"); a token is a target when its first byte
// belongs to a target piece. Needs a tokenizer whose decoder works token by token (byte-level BPE).
LmExample tokenize_pieces(const text::Tokenizer& tok, const std::vector<TextPiece>& pieces,
                          bool add_bos = false);

// The pieces of one worked example in the dataset's prompt format, "Question: q\nAnswer: solution", with the
// solution and the separator that follows it ("\n\n") as targets and the question not. When `first` is false
// the opening "Question:" is a target too: after "\n\n" the model must write it so the stop string
// "\n\nQuestion:" ends its answer as in the few-shot prompt.
std::vector<TextPiece> qa_pieces(data::DatasetKind kind, const data::Problem& problem, bool first);

struct PackOptions {
  int64_t max_tokens = 512;  // per sequence
  int64_t max_examples = 0;  // per sequence; 0: as many as fit
};

// Pretraining sequences: the problems (which must have a solution) in a seeded shuffled order, packed
// greedily into sequences of up to max_tokens tokens laid out like the dataset's few-shot prompt
// ("Question: ..\nAnswer: ..\n\nQuestion: ..."), each ending with the next "Question:" as a target. Every
// example's solution is thus learned after 0..k other examples, so a k-shot prompt is in distribution.
// Problems longer than max_tokens alone are skipped (counted in *skipped when given).
std::vector<LmExample> pack_qa_sequences(const std::vector<data::Problem>& problems, data::DatasetKind kind,
                                         const text::Tokenizer& tok, const PackOptions& opts, uint64_t seed,
                                         int64_t* skipped = nullptr);

// SFT: prompt and completion tokenized separately (the completion's tokens are those the sampler produced
// after the prompt's), the completion's tokens as targets, then EOS as a target when add_eos. Longer than
// max_tokens
// (> 0): the completion is cut.
LmExample completion_example(const text::Tokenizer& tok, const std::string& prompt,
                             const std::string& completion, bool add_eos, int64_t max_tokens = 0);

// SFT on a response (train_ce, train_sft): `text` = prompt + response tokenized as one text, the tokens after
// the last occurrence of `marker` ("Answer:", "Solution:") are the targets, and with add_eos the EOS after
// them too. BOS first when the tokenizer adds one (add_special_tokens). nullopt when the marker is missing or
// nothing follows it. At most max_tokens tokens (the end is cut).
std::optional<LmExample> response_example(const text::Tokenizer& tok, const std::string& text,
                                          const std::string& marker, bool add_eos, int64_t max_tokens);

// Whether encoding with add_special_tokens puts a BOS first (Llama-3 does, Qwen2.5 and tiny do not).
bool tokenizer_adds_bos(const text::Tokenizer& tok);

}  // namespace ctm::train
