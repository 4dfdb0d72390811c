// The adaptive search for the critical token (`ctm sampling --search adaptive`, docs/rollouts.md "Adaptive
// search"): the paper's rule (data::critical_position) needs of each *with* prefix only its class, Z (0
// correct), M (1 .. max_correct) or G (more), and its result is the first Z after the last G when there is
// one. The search asks an oracle for the classes of few positions and returns the rule applied to the
// positions it classified; that equals the rule on every position whenever no G follows a Z (the classes
// then fall from G/M to M/Z along the trajectory), and otherwise may differ (the cases are listed below).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace ctm::data {

enum class SuccessClass : int8_t { Z, M, G };

// Z for 0 correct, G for more than max_correct, else M.
SuccessClass success_class(int64_t correct, int64_t max_correct = 3);

// Classifies the given positions (ascending, each asked once) exactly; returns their classes in that order,
// or fewer to say it cannot (the search then gives up).
using ClassifyPositions = std::function<std::vector<SuccessClass>(const std::vector<int64_t>& positions)>;

// The search over the positions [first, last] (the *with* prefixes):
//  1. classify first and last; if last is G, stop.
//  2. bisect between a known G `lo` (first, else the virtual position first - 1) and a known non-G `hi`
//     (last) until they are adjacent;
//  3. scan from lo + 1 in chunks of `window` positions (one oracle call each) to the first Z, r, and on
//     through r + window (the confirmation); when the scan meets a G, it becomes lo, hi becomes last, and the
//     search goes back to 2.
// The result is critical_position on the classified positions (the others count as "no rollout"): r, or
// -1. It equals the rule on all positions whenever no G follows a Z: lo is then before every Z, the scan
// reaches the first Z and no G after it can drop it. When a G follows a Z it can differ, and only if
//  (a) the last position is G (the rule returns the last dropped candidate; the search looks no further), or
//  (b) a G more than `window` positions after r is followed by a Z (the rule returns a later Z), or
//  (c) no Z follows the last G found, and the rule falls back on a dropped candidate before that G that the
//      search did not classify.
// nullopt when the oracle gave up. window >= 1.
std::optional<int32_t> adaptive_critical_position(int64_t first, int64_t last, int64_t window,
                                                  const ClassifyPositions& classify);

}  // namespace ctm::data
