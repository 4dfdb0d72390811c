#include "ctm/engine/sampler.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "ctm/core/error.hpp"

namespace ctm::engine {
namespace {

struct Candidate {
  double weight;  // exp((logit - max) / temperature), unnormalised
  int32_t id;
};

// The descending order of the nucleus: larger weight first, ties broken by lower id.
bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.weight != b.weight ? a.weight > b.weight : a.id < b.id;
}

// Where the nucleus ends: every token that ranks before `last`, and `last` itself (all tokens with non-zero
// weight when `all`). `weights` are the unnormalised weights of the whole vocabulary and `mass` the
// nucleus's.
struct NucleusCut {
  const std::vector<double>* weights;
  bool all = false;
  Candidate last{0, 0};
  double mass = 0;
  bool contains(int64_t id) const {
    const double w = (*weights)[id];
    return all ? w > 0 : !ranks_before(last, {w, static_cast<int32_t>(id)});
  }
};

// Weight buckets: 32 per octave over the 64 octaves below the largest weight (which is 1), in descending
// value order of the IEEE bits; everything smaller shares bucket 0. Equal weights share a bucket, so a bucket
// holds a contiguous stretch of the descending order.
constexpr int kBucketsPerOctaveLog2 = 5, kOctaves = 64;
constexpr int kBuckets = (kOctaves + 1) << kBucketsPerOctaveLog2;
inline int bucket_of(double w) {
  uint64_t bits;
  std::memcpy(&bits, &w, sizeof bits);
  const int64_t key = static_cast<int64_t>(bits >> (52 - kBucketsPerOctaveLog2)) -
                      (static_cast<int64_t>(1023 - kOctaves) << kBucketsPerOctaveLog2);
  return static_cast<int>(std::clamp<int64_t>(key, 0, kBuckets - 1));
}

// The cut in O(vocab) without sorting: the mass of each bucket locates the bucket where the running mass of
// the descending order crosses top_p; only that bucket's tokens are ranked (by quickselect on mass).
NucleusCut nucleus_cut(const float* logits, int64_t vocab, double temperature, double top_p) {
  CTM_CHECK(vocab > 0, "sampler: empty logits");
  CTM_CHECK(temperature > 0, "sampler: temperature must be > 0 (got ", temperature, ")");
  CTM_CHECK(top_p > 0, "sampler: top_p must be in (0, 1] (got ", top_p, ")");
  thread_local std::vector<double> weights;
  thread_local std::vector<Candidate> cands;
  weights.resize(vocab);
  const float max_logit = logits[argmax_token(logits, vocab)];
  CTM_CHECK(std::isfinite(max_logit), "sampler: logits are not finite (max ", max_logit, ")");
  const double inv_t = 1.0 / temperature;
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    weights[i] = std::exp((static_cast<double>(logits[i]) - max_logit) * inv_t);
    total += weights[i];
  }
  NucleusCut cut;
  cut.weights = &weights;
  if (top_p >= 1.0) {
    cut.all = true;
    cut.mass = total;
    return cut;
  }
  const double target = top_p * total;
  std::array<double, kBuckets> bucket_mass{};
  for (int64_t i = 0; i < vocab; ++i)
    if (weights[i] > 0) bucket_mass[bucket_of(weights[i])] += weights[i];
  int crossing = 0;
  double acc = 0;  // mass of the buckets above the crossing one
  for (int b = kBuckets - 1; b >= 0; --b) {
    if (bucket_mass[b] == 0) continue;
    crossing = b;
    if (acc + bucket_mass[b] >= target) break;
    acc += bucket_mass[b];
  }
  cands.clear();
  for (int64_t i = 0; i < vocab; ++i)
    if (weights[i] > 0 && bucket_of(weights[i]) == crossing)
      cands.push_back({weights[i], static_cast<int32_t>(i)});
  // Smallest k whose top-k mass reaches the target (the token that crosses it stays; rounding that leaves the
  // whole vocabulary short of it keeps everything). Invariant: the crossing token ranks in [lo, hi) and acc,
  // the mass of the tokens ranking before lo, is below the target.
  size_t lo = 0, hi = cands.size();
  while (true) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(cands.begin() + lo, cands.begin() + mid, cands.begin() + hi, ranks_before);
    double left = 0;  // mass of the tokens ranking in [lo, mid)
    for (size_t i = lo; i < mid; ++i) left += cands[i].weight;
    if (mid > lo && acc + left >= target) {
      hi = mid;
    } else if (mid + 1 >= hi || acc + left + cands[mid].weight >= target) {
      cut.last = cands[mid];
      cut.mass = acc + left + cands[mid].weight;
      return cut;
    } else {
      acc += left + cands[mid].weight;
      lo = mid + 1;
    }
  }
}

// The logits with the forbidden ids at -inf (a per-thread copy), or the logits themselves when none is.
const float* without(const float* logits, int64_t vocab, const std::vector<int32_t>& forbidden) {
  if (forbidden.empty()) return logits;
  thread_local std::vector<float> masked;
  masked.assign(logits, logits + vocab);
  for (int32_t id : forbidden) {
    CTM_CHECK(id >= 0 && id < vocab, "sampler: forbidden token ", id, " outside the vocabulary of ", vocab);
    masked[id] = -std::numeric_limits<float>::infinity();
  }
  CTM_CHECK(masked[argmax_token(masked.data(), vocab)] > -std::numeric_limits<float>::infinity(),
            "sampler: every token is forbidden");
  return masked.data();
}

}  // namespace

int32_t argmax_token(const float* logits, int64_t vocab) {
  CTM_CHECK(vocab > 0, "sampler: empty logits");
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Nucleus top_p_nucleus(const float* logits_in, int64_t vocab, double temperature, double top_p,
                      const std::vector<int32_t>& forbidden) {
  const float* logits = without(logits_in, vocab, forbidden);
  const NucleusCut cut = nucleus_cut(logits, vocab, temperature, top_p);
  std::vector<Candidate> members;
  for (int64_t i = 0; i < vocab; ++i)
    if (cut.contains(i)) members.push_back({(*cut.weights)[i], static_cast<int32_t>(i)});
  if (!cut.all) std::sort(members.begin(), members.end(), ranks_before);
  Nucleus n;
  for (const auto& c : members) {
    n.ids.push_back(c.id);
    n.probs.push_back(c.weight / cut.mass);
  }
  return n;
}

int32_t sample_token(const float* logits_in, int64_t vocab, double temperature, double top_p, double u,
                     const std::vector<int32_t>& forbidden) {
  const float* logits = without(logits_in, vocab, forbidden);
  if (temperature < kGreedyTemperature) return argmax_token(logits, vocab);
  CTM_CHECK(u >= 0 && u < 1, "sampler: uniform draw must be in [0, 1) (got ", u, ")");
  const NucleusCut cut = nucleus_cut(logits, vocab, temperature, top_p);
  // The nucleus walked in id order: the same distribution as any order, without sorting it.
  const double target = u * cut.mass;
  double acc = 0;
  int64_t last = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!cut.contains(i)) continue;
    acc += (*cut.weights)[i];
    last = i;
    if (acc > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last);  // only reachable through rounding at u close to 1
}

}  // namespace ctm::engine
