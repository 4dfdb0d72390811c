// Token sampling as pure functions: logits, temperature, top_p and the uniform draw in, token out. The draw
// is an argument (not a generator) so a sample's tokens depend only on its own random stream, and tests can
// pick it.
#pragma once

#include <cstdint>
#include <vector>

namespace ctm::engine {

// Temperatures below this are greedy (vLLM's _SAMPLING_EPS).
constexpr double kGreedyTemperature = 1e-5;

// Index of the largest logit; the lowest index among equal maxima.
int32_t argmax_token(const float* logits, int64_t vocab);

// The nucleus of softmax(logits / temperature): tokens sorted by probability, descending (ties: lower id
// first), cut to the smallest prefix whose probability reaches top_p (at least one token), exactly as vLLM
// and Hugging Face do. probs are renormalised over the nucleus. top_p >= 1 keeps every token with non-zero
// probability, in id order (the same distribution without sorting the vocabulary).
struct Nucleus {
  std::vector<int32_t> ids;
  std::vector<double> probs;
};
//
// forbidden: token ids whose probability is set to 0 before everything else, the others renormalised, i.e.
// the softmax over the other tokens' logits: temperature and top_p then apply to that distribution. Computed
// from the logits, so it is exact even when a forbidden token held (to float precision) all the probability:
// e.g. logits [100, 0, -1] with token 0 forbidden give tokens 1 and 2 with e / (1 + e) and 1 / (1 + e) at
// temperature 1. ctm::Error when every token is forbidden.
Nucleus top_p_nucleus(const float* logits, int64_t vocab, double temperature, double top_p,
                      const std::vector<int32_t>& forbidden = {});

// One token: greedy when temperature < kGreedyTemperature (the most likely token that is not forbidden), else
// the nucleus sampled by inverse CDF with u in [0, 1), walking the nucleus in id order (the distribution of
// top_p_nucleus, with no sort of the vocabulary).
int32_t sample_token(const float* logits, int64_t vocab, double temperature, double top_p, double u,
                     const std::vector<int32_t>& forbidden = {});

}  // namespace ctm::engine
