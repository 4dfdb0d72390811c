// ce_scores.h5 (format "ctm-ce-scores", version 1): the contrastive-estimation score of every token of every
// DPO pair (DESIGN §5, docs/file-formats.md). In memory one CePair per pair; on disk flat arrays with CSR
// offsets:
//   /prompt, /answer                       string[P]
//   /{chosen,rejected}/token_ids           int32[N]    pair p: token_ids[offsets[p]:offsets[p+1]]
//                      /offsets            int64[P+1]
//                      /response_start     int32[P]    index within the pair's tokens
//                      /ce_prob            float32[N]  softmax(cd_logits[t-1])[token_t]; 1 at index 0
//                      /logp_pos, logp_neg float32[N]  log-probabilities of the two CE models; 0 at index 0
//                      /response           string[P]
//   root attributes: format, format_version, ctm_version, settings (JSON), model_name, dataset_name, beta.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/io/flat_file.hpp"

namespace ctm::io {

inline const std::string kCeScoresFormat = "ctm-ce-scores";
constexpr int64_t kCeScoresVersion = 1;

// One side (chosen or rejected) of a pair: the scored tokens of prompt + response.
struct CeSide {
  std::vector<int32_t> token_ids;
  int32_t response_start = 0;                      // index in token_ids where the response begins
  std::vector<float> ce_prob, logp_pos, logp_neg;  // one per token; index 0 (no context): 1, 0, 0
  std::string response;
  bool operator==(const CeSide&) const;
};

struct CePair {
  std::string prompt;
  std::string answer;  // JSON text of the list of gold answers
  CeSide chosen, rejected;
  bool operator==(const CePair&) const;
};

struct CeScores {
  RunInfo run;
  double beta = 1.0;
  std::vector<CePair> pairs;
};

// The flat layout of `scores`, whose pairs are one writer's contiguous part of the file, starting at pair
// `first_pair` (for messages). ctm::Error naming the pair and field when a pair is inconsistent: lengths
// differ, response_start out of range, a value not finite, a probability outside [0, 1], index 0 not
// (1, 0, 0), an answer that is not a JSON list, text that is not UTF-8.
FlatFile ce_scores_flat(const CeScores& scores, int64_t first_pair = 0);

void write_ce_scores(const std::string& path, const CeScores& scores, const h5::Storage& storage = {});
// Reads and checks a file (format, version, every size and offset); ctm::Error naming the file and dataset.
CeScores read_ce_scores(const std::string& path);

}  // namespace ctm::io
