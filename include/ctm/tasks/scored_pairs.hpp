// The DPO pairs as calculate_ce_score and train_cdpo see them: where the files are, each side tokenized as
// prompt + response (BOS where the tokenizer adds one) with the index where the response begins, and the CE
// scores read back from ce_scores.h5 or from the release's CE_scored JSON, aligned with those tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/data/selection.hpp"
#include "ctm/tasks/task.hpp"
#include "ctm/text/tokenizer.hpp"
#include "ctm/train/preference.hpp"

namespace ctm::tasks {

struct ScoredPairPaths {
  std::string dpo;        // --dpo_data, else prepare_startup_data's DPO file of the startup run tag
  std::string ce_scores;  // --output / --ce_scores, else data/<model>/<dataset>.ce_scores.h5
};
ScoredPairPaths scored_pair_paths(const TaskContext& ctx, const std::string& model);
// The release's name for the CE_scored JSON of a DPO file: "<dpo without .json>.CE_scored.json".
std::string release_ce_json_path(const std::string& dpo_path);

struct TokenizedSide {
  std::vector<int32_t> ids;    // [BOS] + tokens of prompt + response, tokenized as one text
  int32_t response_start = 0;  // the first token holding a byte of the response
};
struct TokenizedPair {
  TokenizedSide chosen, rejected;
  int32_t prompt_tokens = 0;  // tokens before the response (the shorter side's response_start)
};
std::vector<TokenizedPair> tokenize_pairs(const text::Tokenizer& tok,
                                          const std::vector<data::DpoPairText>& pairs);

// ce_prob of every token of each pair's rejected side (aligned with tokenize_pairs' ids), read from our HDF5
// file or the release's CE_scored JSON (by its extension). The file's pairs must be the DPO file's, in the
// same order (same prompt and responses); a pair whose scores do not cover its tokens is an error naming it.
std::vector<std::vector<float>> rejected_ce_probs(const std::string& path,
                                                  const std::vector<data::DpoPairText>& texts,
                                                  const std::vector<TokenizedPair>& pairs);

// The pairs train_cdpo trains on: each side's ids + EOS with its response start, and for cDPO (ce given)
// the rejected tokens' weights w_j = 1 - ce_prob_j aligned by token index, the EOS (which has no score)
// weighing 1. Pairs whose prompt has max_prompt tokens or more, or whose longer side + EOS exceeds
// max_length, are dropped (counted).
struct TrainingPairs {
  std::vector<train::PreferencePair> pairs;
  int64_t dropped = 0;
};
TrainingPairs training_pairs(const std::vector<TokenizedPair>& tokenized,
                             const std::vector<std::vector<float>>* ce, int32_t eos, int64_t max_prompt,
                             int64_t max_length);

}  // namespace ctm::tasks
