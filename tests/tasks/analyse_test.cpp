// ctm analyse on rollouts.h5 and ce_scores.h5 files written here with hand-chosen counts: the critical
// positions the rule gives, pass@k with and without them (against values worked out by hand), and the
// critical tokens' ranks by ce_prob.
#include <gtest/gtest.h>

#include <filesystem>

#include "../io/score_files_util.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/rollouts.hpp"

namespace ctm {
namespace {

// A trajectory of 6 tokens, the response from index 2: *with* rollouts at 2..4 (the last token has none),
// *without* at 2..5, 64 each; the alternatives' outcomes agree with the counts.
io::Trajectory trajectory(int32_t pair, std::vector<int16_t> with_correct,
                          std::vector<int16_t> without_correct) {
  io::Trajectory t;
  t.question = "q" + std::to_string(pair);
  t.answer = "[\"7\"]";
  t.pair_index = pair;
  t.token_ids = {1, 10 + pair, 20, 21, 22, 23};
  t.response_start = 2;
  t.with_correct = {0, 0, with_correct[0], with_correct[1], with_correct[2], 0};
  t.with_total = {0, 0, 64, 64, 64, 0};
  t.without_correct = {0, 0, without_correct[0], without_correct[1], without_correct[2], without_correct[3]};
  t.without_total = {0, 0, 64, 64, 64, 64};
  t.alt_offsets = {0};
  for (size_t i = 0; i < t.token_ids.size(); ++i) {
    for (int k = 0; k < t.without_total[i]; ++k) {
      t.alt_token_ids.push_back(30 + k % 5);
      t.alt_correct.push_back(k < t.without_correct[i] ? 1 : 0);
    }
    t.alt_offsets.push_back(static_cast<int64_t>(t.alt_token_ids.size()));
  }
  return t;
}

io::CeSide ce_side(const io::Trajectory& t, std::vector<float> ce) {
  io::CeSide s;
  s.token_ids = t.token_ids;
  s.response_start = t.response_start;
  s.ce_prob = std::move(ce);
  s.logp_pos = s.logp_neg = std::vector<float>(s.ce_prob.size(), -1.0f);
  s.logp_pos[0] = s.logp_neg[0] = 0.0f;
  s.response = "r";
  return s;
}

TEST(AnalyseTask, CriticalTokensPassAtKAndCeRanks) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "ctm_analyse";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  io::Rollouts r = test::rollouts_header();
  // 0: 10 then 0 correct: critical at 3. 1: never 0 correct: none. 2: 0 at 2, dropped by 9 at 3, 0 at 4:
  // critical at 4. The stored critical positions are left at -1: analyse applies the rule itself.
  r.trajectories = {trajectory(0, {10, 0, 0}, {5, 40, 3, 0}), trajectory(1, {20, 30, 10}, {1, 2, 3, 4}),
                    trajectory(2, {0, 9, 0}, {0, 0, 8, 2})};
  io::write_rollouts((dir / "r.rollouts.h5").string(), r);

  io::CeScores ce;
  ce.run = r.run;
  for (const io::Trajectory& t : r.trajectories) {
    io::CePair p;
    p.prompt = t.question;
    p.answer = t.answer;
    p.chosen = ce_side(t, {1, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f});
    p.rejected = ce_side(t, t.pair_index == 0 ? std::vector<float>{1, .9f, .8f, .1f, .5f, .7f}  // rank 1 of 4
                                              : std::vector<float>{1, .9f, .2f, .6f, .5f, .3f});  // 4: rank 3
    ce.pairs.push_back(p);
  }
  io::write_ce_scores((dir / "ce.h5").string(), ce);

  const std::string cmd = std::string(CTM_BINARY) + " analyse --rollouts " +
                          (dir / "r.rollouts.h5").string() + " --ce_scores " + (dir / "ce.h5").string() +
                          " --log_level warn > " + (dir / "out.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const Json a = read_json_file((dir / "r.rollouts.analysis.json").string());
  EXPECT_EQ(a["critical_position"], Json::array({3, -1, 4}));
  EXPECT_EQ(a["with_critical"], 2);
  const Json& with = a["pass_at_k"]["with"];
  const Json& without = a["pass_at_k"]["without"];
  ASSERT_EQ(with.size(), 64u);
  ASSERT_EQ(without.size(), 64u);
  for (int k = 0; k < 64; ++k) EXPECT_EQ(with[k].get<double>(), 0.0) << "k " << k + 1;  // 0 correct at both
  EXPECT_DOUBLE_EQ(without[0].get<double>(), (40.0 / 64 + 8.0 / 64) / 2);  // pass@1 = success rate
  EXPECT_DOUBLE_EQ(without[1].get<double>(),
                   ((1 - 24.0 / 64 * 23 / 63) + (1 - 56.0 / 64 * 55 / 63)) / 2);  // 1 - C(n-c,2)/C(n,2)
  EXPECT_DOUBLE_EQ(without[63].get<double>(), 1.0);
  EXPECT_EQ(a["ce"]["rank"], Json::array({1, nullptr, 3}));
  EXPECT_EQ(a["ce"]["compared"], 2);
  EXPECT_DOUBLE_EQ(a["ce"]["fraction_in_lowest_5pct"].get<double>(), 0.5);

  // The figures from the HDF5 file alone (the stored critical positions, here the rule's).
  for (size_t t = 0; t < r.trajectories.size(); ++t)
    r.trajectories[t].critical_position = a["critical_position"][t].get<int32_t>();
  io::write_rollouts((dir / "r.rollouts.h5").string(), r);
  const std::string plot = "/usr/bin/python3 " + std::string(CTM_SOURCE_DIR) + "/tools/plot_rollouts.py " +
                           (dir / "r.rollouts.h5").string() + " --out " + (dir / "png").string() + " > " +
                           (dir / "plot.txt").string();
  ASSERT_EQ(std::system(plot.c_str()), 0);
  for (const char* png : {"r.rollouts.trajectory0.png", "r.rollouts.pass_at_k.png"})
    EXPECT_GT(std::filesystem::file_size(dir / "png" / png), 1000u) << png;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ctm
