// ARITH: synthetic arithmetic word problems in GSM8K's openai format, the embedded default's data set
// (DESIGN.md §6). Each problem is 2-4 steps whose operation follows from the wording (buys / finds / receives
// -> add; gives away / eats / loses / sells -> subtract; each / per / every / times -> multiply; shares
// equally / splits into -> exact divide), with a distractor sentence in half of them. The worked solution
// restates every step in the few-shot style ("He bought 3 more, so he has 5 + 3 = 8.") so that one wrong
// word derails the computation.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ctm::data {

// The number ranges, the knobs that set how hard ARITH is. DESIGN.md §6: operands up to about 10 and a
// distractor in half the problems made a 3.2M-parameter model reach 64% greedy accuracy.
struct ArithRanges {
  int min_steps = 2, max_steps = 4;
  int max_start = 10;            // a first amount of items, 2..max_start
  int max_start_containers = 6;  // a first amount of boxes/bags, 2..max_start_containers
  int max_addend = 10;           // added or removed amounts, 1..max_addend
  int max_factor = 5;            // "times" / "each" factors, 2..max_factor
  int max_per_container = 10;    // items per box, 2..max_per_container
  int max_divisor = 5;           // "shares equally among" / "splits into", 2..max_divisor
  int max_value = 60;            // every intermediate amount and the answer stay in 1..max_value
  double distractor_rate = 0.5;  // share of problems with one irrelevant sentence that has a number
};

enum class ArithOp { Add = 0, Subtract = 1, Multiply = 2, Divide = 3 };
inline constexpr std::array<const char*, 4> kArithOpNames = {"add", "subtract", "multiply", "divide"};

struct ArithProblem {
  std::string question;
  std::string solution;  // the worked steps ending in "The answer is N." (no "####" line)
  int64_t answer = 0;
  std::vector<ArithOp> ops;            // one per step
  std::vector<std::string> phrasings;  // the wording that chose each op ("buys", "eats", ...)
  bool has_distractor = false;
  int64_t max_intermediate = 0;
  std::string openai_answer() const;  // solution + "\n#### N"
};

// One problem, a pure function of (seed, index): its random draws come from mix_seed(seed, index, 0).
ArithProblem generate_arith_problem(uint64_t seed, uint64_t index, const ArithRanges& ranges = {});

struct ArithSplits {
  std::vector<ArithProblem> train, test;
  int64_t skipped_duplicates = 0;  // candidates dropped because their question text was already taken
};

// The test split draws indices 0, 1, ...; the train split indices kArithTrainIndexBase, ... (so neither
// depends on the other's size). A candidate whose question text is already in the test split or in its own
// split is skipped: no question is in both splits and none repeats.
inline constexpr uint64_t kArithTrainIndexBase = uint64_t{1} << 40;
ArithSplits generate_arith_splits(int64_t train_size, int64_t test_size, uint64_t seed,
                                  const ArithRanges& ranges = {});

// Counts over a split, for the synth task's report and for tests.
struct ArithStats {
  int64_t problems = 0, with_distractor = 0;
  std::map<int, int64_t> steps;              // step count -> problems
  std::array<int64_t, 4> ops{};              // by ArithOp
  std::map<std::string, int64_t> phrasings;  // wording -> uses
  int64_t answer_min = 0, answer_max = 0, intermediate_max = 0;
  double answer_mean = 0;
  std::map<int64_t, int64_t> answer_buckets;  // answer / 10 * 10 -> problems
};
ArithStats arith_stats(const std::vector<ArithProblem>& problems);
std::string format_arith_stats(const std::string& split_name, const ArithStats& stats);

// {"question": ..., "answer": "...\n#### N"} lines (GSM8K's openai format), written atomically.
void write_arith_jsonl(const std::string& path, const std::vector<ArithProblem>& problems);

}  // namespace ctm::data
