#include "ctm/data/critical_search.hpp"

#include <algorithm>
#include <cassert>
#include <map>

#include "ctm/data/critical.hpp"

namespace ctm::data {

SuccessClass success_class(int64_t correct, int64_t max_correct) {
  if (correct == 0) return SuccessClass::Z;
  return correct > max_correct ? SuccessClass::G : SuccessClass::M;
}

namespace {

// One search: the classes learnt so far, asked of the oracle at most once per position.
class Search {
 public:
  Search(int64_t first, int64_t last, int64_t window, const ClassifyPositions& classify)
      : first_(first), last_(last), window_(window), classify_(classify) {}

  std::optional<int32_t> run() {
    if (last_ < first_) return -1;
    if (!learn({first_, last_})) return std::nullopt;
    if (at(last_) == SuccessClass::G) return result();
    int64_t lo = at(first_) == SuccessClass::G ? first_ : first_ - 1;  // first - 1: a virtual G
    for (;;) {
      if (!bisect(lo, last_)) return std::nullopt;
      const std::optional<int64_t> g = scan(lo);
      if (!g) return std::nullopt;
      if (*g < 0) return result();
      lo = *g;  // a G after lo: the answer lies after it
    }
  }

 private:
  bool learn(std::vector<int64_t> positions) {
    positions.erase(
        std::remove_if(positions.begin(), positions.end(), [&](int64_t p) { return known_.count(p) > 0; }),
        positions.end());
    std::sort(positions.begin(), positions.end());
    positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
    if (positions.empty()) return true;
    const std::vector<SuccessClass> classes = classify_(positions);
    if (classes.size() != positions.size()) return false;
    for (size_t k = 0; k < positions.size(); ++k) known_[positions[k]] = classes[k];
    return true;
  }

  SuccessClass at(int64_t p) const { return known_.at(p); }

  // Narrows a known G `lo` (or the virtual one) and a known non-G `hi` to adjacent positions.
  bool bisect(int64_t& lo, int64_t hi) {
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (!learn({mid})) return false;
      (at(mid) == SuccessClass::G ? lo : hi) = mid;
    }
    return true;
  }

  // Classifies lo + 1 onwards, `window` positions an oracle call, to the first Z r and then through
  // r + window. The first G met (which moves the answer after it), or -1.
  std::optional<int64_t> scan(int64_t lo) {
    int64_t r = -1;
    for (int64_t p = lo + 1; p <= last_ && (r < 0 || p <= r + window_);) {
      const int64_t q = std::min(last_, r < 0 ? p + window_ - 1 : r + window_);
      std::vector<int64_t> chunk;
      for (int64_t i = p; i <= q; ++i) chunk.push_back(i);
      if (!learn(chunk)) return std::nullopt;
      for (int64_t i = p; i <= q; ++i) {
        if (at(i) == SuccessClass::G) return i;
        if (at(i) == SuccessClass::Z && r < 0) r = i;
      }
      p = q + 1;
    }
    return -1;
  }

  // The rule on the classified positions, the others counting as positions without rollouts.
  int32_t result() const {
    const auto n = static_cast<size_t>(last_ - first_ + 1);
    std::vector<int16_t> correct(n, 0), total(n, 0);
    for (const auto& [p, c] : known_) {
      const auto k = static_cast<size_t>(p - first_);
      total[k] = 1;
      correct[k] = c == SuccessClass::Z ? 0 : c == SuccessClass::M ? 1 : 4;
    }
    const int32_t r = critical_position(correct, total, /*max_correct=*/3);
    return r < 0 ? -1 : static_cast<int32_t>(r + first_);
  }

  const int64_t first_, last_, window_;
  const ClassifyPositions& classify_;
  std::map<int64_t, SuccessClass> known_;
};

}  // namespace

std::optional<int32_t> adaptive_critical_position(int64_t first, int64_t last, int64_t window,
                                                  const ClassifyPositions& classify) {
  assert(window >= 1);
  return Search(first, last, window, classify).run();
}

}  // namespace ctm::data
