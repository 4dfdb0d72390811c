// Deterministic random numbers. Every draw in ctm comes from an Rng seeded with mix_seed(seed, item, sample),
// so results do not depend on rank count, batch composition or thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ctm {

// A well-mixed 64-bit seed for (run seed, item id, sample id).
uint64_t mix_seed(uint64_t seed, uint64_t item, uint64_t sample);

// xoshiro256** seeded through splitmix64: small, fast and with a state that is easy to checkpoint.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  double uniform();            // [0, 1), 53 random bits
  uint64_t below(uint64_t n);  // uniform in [0, n), unbiased; n > 0
  double normal();             // standard normal (Box-Muller, no cached second value)
  template <class T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
  // The full state, for checkpoints.
  std::vector<uint64_t> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const std::vector<uint64_t>& st);

 private:
  uint64_t s_[4];
};

}  // namespace ctm
