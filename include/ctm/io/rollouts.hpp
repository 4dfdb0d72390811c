// rollouts.h5 (format "ctm-rollouts", version 1): rollout sampling around every token of incorrect
// trajectories (issue 12, DESIGN §5, docs/file-formats.md). In memory one Trajectory per trajectory; on disk
// flat arrays, T trajectories with N tokens in all:
//   /trajectories/token_ids int32[N]   trajectory t: token_ids[offsets[t]:offsets[t+1]] (prompt + response)
//                /offsets int64[T+1], response_start int32[T], pair_index int32[T]
//                /question string[T], answer string[T] (JSON list of the gold answers)
//   /with/correct, /with/total int16[N]        aligned with /trajectories/token_ids; total 0 = no rollout
//   /without/correct, /without/total int16[N]  likewise
//   /without/alt_offsets int64[N+1]            token i's alternatives: alt_token_ids[alt_offsets[i]:
//   /without/alt_token_ids int32[M]              alt_offsets[i+1]], alt_correct (0/1) whether each one's
//   /without/alt_correct int8[M]                 continuation was graded correct
//   /critical/position int32[T]                index within the trajectory's token ids, -1 = none
//   root attributes: format, format_version, ctm_version, settings (JSON), model_name, dataset_name, t,
//   top_p, rollouts_per_position, search, seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/io/flat_file.hpp"

namespace ctm::io {

inline const std::string kRolloutsFormat = "ctm-rollouts";
constexpr int64_t kRolloutsVersion = 1;

struct Trajectory {
  std::string question;
  std::string answer;              // JSON text of the list of gold answers
  int32_t pair_index = 0;          // the DPO pair it comes from
  std::vector<int32_t> token_ids;  // prompt + response
  int32_t response_start = 0;      // index in token_ids where the response begins
  // Per token, aligned with token_ids: graded rollouts from the prefix with the token (with) and with it
  // replaced by a drawn alternative (without); total 0 where no rollout was made.
  std::vector<int16_t> with_correct, with_total, without_correct, without_total;
  // The *without* alternatives: token i's are alt_token_ids[alt_offsets[i]:alt_offsets[i+1]], alt_correct 1
  // where that alternative's continuation was graded correct: token i has without_total[i] alternatives,
  // without_correct[i] of them correct. alt_offsets has token_ids.size() + 1 entries starting at 0; empty
  // stands for all zeros (no without rollouts; the reader returns the zeros).
  std::vector<int64_t> alt_offsets;
  std::vector<int32_t> alt_token_ids;
  std::vector<int8_t> alt_correct;
  int32_t critical_position = -1;  // index in token_ids, -1 = none
  bool operator==(const Trajectory&) const;
};

struct Rollouts {
  RunInfo run;
  double t = 0, top_p = 0;
  int64_t rollouts_per_position = 0;
  std::string search;  // "exhaustive" or "adaptive"
  uint64_t seed = 0;   // stored as int64 (so at most 2^63 - 1)
  std::vector<Trajectory> trajectories;
};

// The flat layout of `r`, whose trajectories are one writer's contiguous part of the file, starting at
// trajectory `first` (for messages). ctm::Error naming the trajectory and field when one is inconsistent:
// lengths differ, a count outside [0, total], offsets not a CSR index, alternatives that disagree with the
// without counts, response_start or critical_position out of range, an answer that is not a JSON list.
FlatFile rollouts_flat(const Rollouts& r, int64_t first = 0);

void write_rollouts(const std::string& path, const Rollouts& r, const h5::Storage& storage = {});
// Reads and checks a file (format, version, every size and offset); ctm::Error naming the file and dataset.
Rollouts read_rollouts(const std::string& path);

}  // namespace ctm::io
