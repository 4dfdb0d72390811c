#include "ctm/engine/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "ctm/core/error.hpp"

namespace ctm::engine {
namespace {

struct Candidate {
  double weight;  // exp((logit - max) / temperature), unnormalised
  int32_t id;
};

// The nucleus as (weight, id) in its walking order, and the sum of its weights. Only tokens whose weight is
// at least a threshold are sorted: they are a prefix of the descending order, so if their mass already
// reaches top_p the nucleus lies inside them. The threshold drops until that holds (usually at the first
// try), which avoids sorting a 128k vocabulary at every step.
double nucleus_candidates(const float* logits, int64_t vocab, double temperature, double top_p,
                          std::vector<Candidate>& out) {
  CTM_CHECK(vocab > 0, "sampler: empty logits");
  CTM_CHECK(temperature > 0, "sampler: temperature must be > 0 (got ", temperature, ")");
  CTM_CHECK(top_p > 0, "sampler: top_p must be in (0, 1] (got ", top_p, ")");
  thread_local std::vector<double> weights;
  weights.resize(vocab);
  const float max_logit = logits[argmax_token(logits, vocab)];
  CTM_CHECK(std::isfinite(max_logit), "sampler: logits are not finite (max ", max_logit, ")");
  const double inv_t = 1.0 / temperature;
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    weights[i] = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
    total += weights[i];
  }
  out.clear();
  if (top_p >= 1.0) {
    for (int64_t i = 0; i < vocab; ++i)
      if (weights[i] > 0) out.push_back({weights[i], static_cast<int32_t>(i)});
    return total;
  }
  const double target = top_p * total;
  for (double threshold = total * 1e-4;; threshold *= 1e-4) {
    if (threshold < 1e-300) threshold = 0;
    out.clear();
    double mass = 0;
    for (int64_t i = 0; i < vocab; ++i)
      if (weights[i] >= threshold && weights[i] > 0) {
        out.push_back({weights[i], static_cast<int32_t>(i)});
        mass += weights[i];
      }
    if (mass >= target || threshold == 0) break;
  }
  std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) {
    return a.weight != b.weight ? a.weight > b.weight : a.id < b.id;
  });
  // Keep a token while the mass strictly before it is below top_p: the token that crosses top_p stays.
  double before = 0;
  size_t keep = 0;
  while (keep < out.size() && (keep == 0 || before < target)) before += out[keep++].weight;
  out.resize(keep);
  return before;
}

}  // namespace

int32_t argmax_token(const float* logits, int64_t vocab) {
  CTM_CHECK(vocab > 0, "sampler: empty logits");
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Nucleus top_p_nucleus(const float* logits, int64_t vocab, double temperature, double top_p) {
  std::vector<Candidate> cands;
  const double mass = nucleus_candidates(logits, vocab, temperature, top_p, cands);
  Nucleus n;
  for (const auto& c : cands) {
    n.ids.push_back(c.id);
    n.probs.push_back(c.weight / mass);
  }
  return n;
}

int32_t sample_token(const float* logits, int64_t vocab, double temperature, double top_p, double u) {
  if (temperature < kGreedyTemperature) return argmax_token(logits, vocab);
  CTM_CHECK(u >= 0 && u < 1, "sampler: uniform draw must be in [0, 1) (got ", u, ")");
  thread_local std::vector<Candidate> cands;
  const double mass = nucleus_candidates(logits, vocab, temperature, top_p, cands);
  const double target = u * mass;
  double acc = 0;
  for (const auto& c : cands) {
    acc += c.weight;
    if (acc > target) return c.id;
  }
  return cands.back().id;  // only reachable through rounding at u close to 1
}

}  // namespace ctm::engine
