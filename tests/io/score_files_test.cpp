// The two score-file layouts: write, read back, compare; the flat arrays against offsets computed here; the
// writers' and readers' checks.
#include <gtest/gtest.h>

#include <filesystem>

#include "ctm/core/error.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/rollouts.hpp"
#include "score_files_util.hpp"

namespace {

namespace fs = std::filesystem;
namespace h5 = ctm::io::h5;
using ctm::test::error_of;
using ctm::test::ScratchDir;

TEST(CeScoresFile, RoundTripAndFlatLayout) {
  ScratchDir tmp("ce_roundtrip");
  const ctm::io::CeScores want = ctm::test::random_ce_scores(23, 7);
  const std::string path = tmp.path("data/tiny/ARITH.ce_scores.h5");
  ctm::io::write_ce_scores(path, want);
  EXPECT_EQ(tmp.files(), 1u);  // data/, no temporary file left

  const ctm::io::CeScores got = ctm::io::read_ce_scores(path);
  EXPECT_EQ(got.run.settings, want.run.settings);
  EXPECT_EQ(got.run.model_name, "tiny");
  EXPECT_EQ(got.run.dataset_name, "ARITH");
  EXPECT_FALSE(got.run.ctm_version.empty());
  EXPECT_NE(got.run.ctm_version, "unknown");
  EXPECT_EQ(got.beta, 1.0);
  ASSERT_EQ(got.pairs.size(), want.pairs.size());
  for (size_t p = 0; p < want.pairs.size(); ++p) EXPECT_TRUE(got.pairs[p] == want.pairs[p]) << "pair " << p;

  // The flat arrays, checked against offsets computed independently of the writer.
  const h5::File f = h5::File::open(path);
  EXPECT_EQ(f.string_attr("format"), "ctm-ce-scores");
  EXPECT_EQ(f.int_attr("format_version"), 1);
  EXPECT_EQ(ctm::parse_json(f.string_attr("settings"), "settings")["beta"], 1.0);
  const auto offsets = f.read<int64_t>("rejected/offsets");
  const auto ids = f.read<int32_t>("rejected/token_ids");
  ASSERT_EQ(offsets.size(), want.pairs.size() + 1);
  int64_t at = 0;
  for (size_t p = 0; p < want.pairs.size(); ++p) {
    EXPECT_EQ(offsets[p], at);
    const auto& side = want.pairs[p].rejected;
    for (size_t i = 0; i < side.token_ids.size(); ++i) EXPECT_EQ(ids[at + i], side.token_ids[i]);
    at += static_cast<int64_t>(side.token_ids.size());
  }
  EXPECT_EQ(offsets.back(), at);
  EXPECT_EQ(f.read_strings("prompt")[3], want.pairs[3].prompt);
  EXPECT_EQ(f.dataset("chosen/ce_prob").type(), h5::Type::F32);
  EXPECT_EQ(f.dataset("chosen/response_start").type(), h5::Type::I32);
}

TEST(CeScoresFile, NoPairs) {
  ScratchDir tmp("ce_empty");
  const std::string path = tmp.path("e.h5");
  ctm::io::write_ce_scores(path, ctm::test::random_ce_scores(0, 1));
  const ctm::io::CeScores got = ctm::io::read_ce_scores(path);
  EXPECT_TRUE(got.pairs.empty());
  EXPECT_EQ(h5::File::open(path).read<int64_t>("chosen/offsets"), std::vector<int64_t>{0});
}

TEST(CeScoresFile, WriterRejectsInconsistentPairsAndWritesNothing) {
  ScratchDir tmp("ce_invalid");
  const std::string path = tmp.path("x.h5");
  auto expect_error = [&](auto change, const std::string& want) {
    ctm::io::CeScores s = ctm::test::random_ce_scores(6, 3);
    change(s);
    const std::string e = error_of([&] { ctm::io::write_ce_scores(path, s); });
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(tmp.files(), 0u);
  };
  expect_error([](auto& s) { s.pairs[3].rejected.ce_prob[1] = 1.5f; }, "pair 3 rejected: ce_prob[1] = 1.5");
  expect_error([](auto& s) { s.pairs[2].chosen.ce_prob[0] = 0.5f; }, "pair 2 chosen: index 0 has no context");
  expect_error([](auto& s) { s.pairs[1].chosen.logp_neg.pop_back(); }, "pair 1 chosen:");
  expect_error([](auto& s) { s.pairs[5].rejected.response_start = 1000; },
               "pair 5 rejected: response_start 1000");
  expect_error([](auto& s) { s.pairs[0].answer = "42"; }, "pair 0: answer is not a JSON list");
  expect_error([](auto& s) { s.pairs[0].prompt = "\xff"; }, "pair 0 prompt: invalid UTF-8");
  expect_error([](auto& s) { s.run.settings = "[1]"; }, "settings attribute must be a JSON object");
  expect_error([](auto& s) { s.pairs[1].rejected.logp_pos[2] = std::nanf(""); }, "pair 1 rejected: logp[2]");
}

TEST(CeScoresFile, ReaderChecksFormatAndOffsets) {
  ScratchDir tmp("ce_reader");
  const std::string rollouts = tmp.path("r.h5");
  ctm::io::write_rollouts(rollouts, ctm::test::random_rollouts(2, 1));
  EXPECT_EQ(error_of([&] { ctm::io::read_ce_scores(rollouts); }),
            "'" + rollouts + "': format attribute is 'ctm-rollouts', expected 'ctm-ce-scores'");

  // A file whose offsets decrease: the reader names the dataset and the item.
  const std::string path = tmp.path("bad.h5");
  ctm::io::write_ce_scores(path, ctm::test::random_ce_scores(4, 2));
  {
    h5::File f = h5::File::open(path, /*write=*/true);
    h5::Dataset d = f.dataset("chosen/offsets");
    auto o = d.read<int64_t>();
    o[2] = o[1] - 1;
    d.write(o.data(), 0, static_cast<int64_t>(o.size()));
    f.close();
  }
  EXPECT_EQ(error_of([&] {
              ctm::io::read_ce_scores(path);
            }).rfind("'" + path + "' dataset '/chosen/offsets': decreases at item 1", 0),
            0u);
}

TEST(RolloutsFile, RoundTripAndFlatLayout) {
  ScratchDir tmp("rollouts_roundtrip");
  const ctm::io::Rollouts want = ctm::test::random_rollouts(17, 11);
  const std::string path = tmp.path("ARITH.rollouts.h5");
  ctm::io::write_rollouts(path, want);
  const ctm::io::Rollouts got = ctm::io::read_rollouts(path);
  EXPECT_EQ(got.run.settings, want.run.settings);
  EXPECT_EQ(got.t, 1.0);
  EXPECT_EQ(got.top_p, 0.95);
  EXPECT_EQ(got.rollouts_per_position, 64);
  EXPECT_EQ(got.search, "exhaustive");
  EXPECT_EQ(got.seed, 42u);
  ASSERT_EQ(got.trajectories.size(), want.trajectories.size());
  for (size_t t = 0; t < want.trajectories.size(); ++t)
    EXPECT_TRUE(got.trajectories[t] == ctm::test::with_full_alt_offsets(want.trajectories[t]))
        << "trajectory " << t;

  // alt_offsets is global: token i of the whole file indexes the whole alternatives array.
  const h5::File f = h5::File::open(path);
  const auto alt_offsets = f.read<int64_t>("without/alt_offsets");
  const auto alt_ids = f.read<int32_t>("without/alt_token_ids");
  const auto total = f.read<int16_t>("without/total");
  ASSERT_EQ(alt_offsets.size(), total.size() + 1);
  for (size_t i = 0; i < total.size(); ++i) EXPECT_EQ(alt_offsets[i + 1] - alt_offsets[i], total[i]) << i;
  std::vector<int32_t> concatenated;
  for (const auto& tr : want.trajectories)
    concatenated.insert(concatenated.end(), tr.alt_token_ids.begin(), tr.alt_token_ids.end());
  EXPECT_EQ(alt_ids, concatenated);
  EXPECT_EQ(f.dataset("with/correct").type(), h5::Type::I16);
  EXPECT_EQ(f.dataset("without/alt_correct").type(), h5::Type::I8);
  EXPECT_EQ(f.dataset("critical/position").type(), h5::Type::I32);
}

TEST(RolloutsFile, NoTrajectories) {
  ScratchDir tmp("rollouts_empty");
  ctm::io::write_rollouts(tmp.path("e.h5"), ctm::test::random_rollouts(0, 1));
  EXPECT_TRUE(ctm::io::read_rollouts(tmp.path("e.h5")).trajectories.empty());
  EXPECT_EQ(h5::File::open(tmp.path("e.h5")).read<int64_t>("without/alt_offsets"), std::vector<int64_t>{0});
}

TEST(RolloutsFile, WriterRejectsInconsistentTrajectories) {
  ScratchDir tmp("rollouts_invalid");
  auto expect_error = [&](auto change, const std::string& want) {
    ctm::io::Rollouts r = ctm::test::random_rollouts(4, 5, 20, 1);
    change(r);
    const std::string e = error_of([&] { ctm::io::write_rollouts(tmp.path("x.h5"), r); });
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_EQ(tmp.files(), 0u);
  };
  expect_error(
      [](auto& r) {
        r.trajectories[1].with_correct[0] = 65;
        r.trajectories[1].with_total[0] = 64;
      },
      "trajectory 1 with: token 0: 65 correct of 64");
  expect_error([](auto& r) { r.trajectories[0].critical_position = 10'000; },
               "trajectory 0: critical_position 10000");
  expect_error([](auto& r) { r.trajectories[0].without_total[0] += 1; }, "trajectory 0: token 0 has");
  expect_error([](auto& r) { r.trajectories[2].without_total.pop_back(); }, "trajectory 2 without:");
  expect_error([](auto& r) { r.seed = ~0ull; }, "does not fit the int64 seed attribute");
}

}  // namespace
