// Seeded random score files for the layout tests and the collective-write test (tests/mpi).
#pragma once

#include <string>

#include "ctm/core/rng.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/rollouts.hpp"
#include "h5_test_util.hpp"

namespace ctm::test {

inline const char* kTexts[] = {"", "2 + 3 = 5", "Ünïcödé ∑ 😀", "line\nbreak\ttab",
                               "The answer is \\boxed{42}."};

inline std::string pick_text(Rng& rng) {
  return kTexts[rng.below(std::size(kTexts))];
}

// One side with n tokens: index 0 (no context) holds 1 and 0, the rest random.
inline io::CeSide random_side(Rng& rng, int64_t n) {
  io::CeSide s;
  for (int64_t i = 0; i < n; ++i) {
    s.token_ids.push_back(static_cast<int32_t>(rng.below(128256)));
    s.ce_prob.push_back(i == 0 ? 1.0f : static_cast<float>(rng.uniform()));
    s.logp_pos.push_back(i == 0 ? 0.0f : static_cast<float>(-10 * rng.uniform()));
    s.logp_neg.push_back(i == 0 ? 0.0f : static_cast<float>(-10 * rng.uniform()));
  }
  s.response_start = static_cast<int32_t>(rng.below(static_cast<uint64_t>(n) + 1));
  s.response = pick_text(rng);
  return s;
}

// pairs pairs with sides of 0 to max_len tokens (every 5th side empty).
inline io::CeScores random_ce_scores(int64_t pairs, uint64_t seed, int64_t max_len = 40) {
  Rng rng(seed);
  io::CeScores s;
  s.run.settings = R"({"model_name":"tiny","dataset_name":"ARITH","beta":1.0,"adapters":["pos","neg"]})";
  s.run.model_name = "tiny";
  s.run.dataset_name = "ARITH";
  s.beta = 1.0;
  for (int64_t p = 0; p < pairs; ++p) {
    io::CePair pair;
    pair.prompt = "Question: " + pick_text(rng) + "\nAnswer: ";
    pair.answer = p % 2 ? R"(["5"])" : R"(["42", "\\frac{1}{2}"])";
    pair.chosen = random_side(rng, p % 5 == 4 ? 0 : 1 + static_cast<int64_t>(rng.below(max_len)));
    pair.rejected = random_side(rng, 1 + static_cast<int64_t>(rng.below(max_len)));
    s.pairs.push_back(std::move(pair));
  }
  return s;
}

// A rollouts file's settings (tiny on ARITH, exhaustive, 64 rollouts a position), no trajectory yet.
inline io::Rollouts rollouts_header() {
  io::Rollouts r;
  r.run.settings = R"({"model_name":"tiny","dataset_name":"ARITH","t":1.0,"search":"exhaustive"})";
  r.run.model_name = "tiny";
  r.run.dataset_name = "ARITH";
  r.t = 1.0;
  r.top_p = 0.95;
  r.rollouts_per_position = 64;
  r.search = "exhaustive";
  r.seed = 42;
  return r;
}

// trajectories trajectories of min_len to max_len tokens; every third has no without rollouts (and keeps no
// alternatives).
inline io::Rollouts random_rollouts(int64_t trajectories, uint64_t seed, int64_t max_len = 30,
                                    int64_t min_len = 0) {
  Rng rng(seed);
  io::Rollouts r = rollouts_header();
  for (int64_t t = 0; t < trajectories; ++t) {
    io::Trajectory tr;
    tr.question = pick_text(rng);
    tr.answer = R"(["7"])";
    tr.pair_index = static_cast<int32_t>(3 * t);
    const auto n = min_len + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_len - min_len) + 1));
    const bool alternatives = t % 3 != 2;
    if (alternatives) tr.alt_offsets.push_back(0);
    for (int64_t i = 0; i < n; ++i) {
      tr.token_ids.push_back(static_cast<int32_t>(rng.below(1000)));
      const auto with_total = static_cast<int16_t>(rng.below(3) ? 64 : 0);
      tr.with_total.push_back(with_total);
      tr.with_correct.push_back(static_cast<int16_t>(rng.below(static_cast<uint64_t>(with_total) + 1)));
      const auto k = static_cast<int64_t>(alternatives ? rng.below(6) : 0);
      int16_t correct = 0;
      for (int64_t a = 0; a < k; ++a) {
        tr.alt_token_ids.push_back(static_cast<int32_t>(rng.below(1000)));
        tr.alt_correct.push_back(static_cast<int8_t>(rng.below(2)));
        correct = static_cast<int16_t>(correct + tr.alt_correct.back());
      }
      tr.without_total.push_back(static_cast<int16_t>(k));
      tr.without_correct.push_back(correct);
      if (alternatives) tr.alt_offsets.push_back(static_cast<int64_t>(tr.alt_token_ids.size()));
    }
    tr.response_start = static_cast<int32_t>(rng.below(static_cast<uint64_t>(n) + 1));
    tr.critical_position =
        n > 0 && rng.below(2) ? static_cast<int32_t>(rng.below(static_cast<uint64_t>(n))) : -1;
    r.trajectories.push_back(std::move(tr));
  }
  return r;
}

// What the reader returns for a trajectory written with an empty alt_offsets: the zeros it stands for.
inline io::Trajectory with_full_alt_offsets(io::Trajectory tr) {
  if (tr.alt_offsets.empty()) tr.alt_offsets.assign(tr.token_ids.size() + 1, 0);
  return tr;
}

}  // namespace ctm::test
