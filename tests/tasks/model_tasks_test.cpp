// `ctm logprobs` and `ctm merge` run as the binary: logprobs of the reference fixture match Hugging Face's
// values, text lines are tokenized with the model's tokenizer, --lora_path changes the scores exactly as the
// merged model does, and the merged folder is a complete Hugging Face folder.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "ctm/core/atomic_file.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/logprobs.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {
namespace {

const std::string kFixture = std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";

std::string temp_dir() {
  const auto info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(::testing::TempDir()) / "ctm_model_tasks" / info->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

int run_ctm(const std::string& args) {
  const std::string cmd = std::string(CTM_BINARY) + " " + args + " --log_level warn";
  return std::system(cmd.c_str());
}

double max_diff(const Json& a, const Json& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i].get<double>() - b[i].get<double>()));
  return worst;
}

TEST(LogprobsTask, MatchesReferenceCases) {
  const std::string dir = temp_dir();
  ASSERT_EQ(run_ctm("logprobs --model_path " + kFixture + " --input " + kFixture + "/cases.jsonl --output " +
                    dir + "/out.jsonl --batch_tokens 20"),
            0);
  const auto ref = read_jsonl(kFixture + "/cases.jsonl");
  const auto out = read_jsonl(dir + "/out.jsonl");
  ASSERT_EQ(out.size(), ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(out[i]["ids"], ref[i]["ids"]);
    EXPECT_EQ(out[i]["logprobs"].size(), ref[i]["ids"].size() - 1);
    EXPECT_LT(max_diff(out[i]["logprobs"], ref[i]["logprobs"]), 1e-4) << "line " << i + 1;
  }
}

TEST(LogprobsTask, TextIsTokenizedWithTheModelTokenizer) {
  const std::string dir = temp_dir();
  const std::string text = "12 + 7 = 19";
  const auto tok = text::Tokenizer::load(kFixture);
  const auto enc = tok.encode(text, true);
  const std::vector<int64_t> ids(enc.begin(), enc.end());
  ASSERT_GE(ids.size(), 2u);
  write_file_atomic(dir + "/in.jsonl", Json{{"text", text}}.dump() + "\n" + Json{{"ids", ids}}.dump() + "\n");
  ASSERT_EQ(run_ctm("logprobs --model_path " + kFixture + " --input " + dir + "/in.jsonl --output " + dir +
                    "/out.jsonl"),
            0);
  const auto out = read_jsonl(dir + "/out.jsonl");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["text"], text);
  EXPECT_EQ(out[0]["ids"], Json(ids));
  EXPECT_EQ(out[0]["logprobs"], out[1]["logprobs"]);
  EXPECT_EQ(out[0]["logprobs"].size(), ids.size() - 1);
}

TEST(LogprobsTask, BadInputNamesTheLine) {
  const std::string dir = temp_dir();
  write_file_atomic(dir + "/in.jsonl", "{\"ids\": [1, 2]}\n{\"ids\": [1, 999999]}\n");
  EXPECT_NE(run_ctm("logprobs --model_path " + kFixture + " --input " + dir + "/in.jsonl --output " + dir +
                    "/out.jsonl 2> " + dir + "/err.txt"),
            0);
  const std::string err = read_file(dir + "/err.txt");
  EXPECT_NE(err.find("in.jsonl:2"), std::string::npos) << err;
  EXPECT_NE(err.find("999999"), std::string::npos) << err;
  EXPECT_FALSE(file_exists(dir + "/out.jsonl"));
}

TEST(MergeTask, MergedFolderScoresAsBasePlusAdapter) {
  const std::string dir = temp_dir();
  // An adapter with non-zero B on every projection.
  auto model = model::load_model(kFixture, torch::kCPU, torch::kFloat32);
  model::LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.target_modules = model::projection_names();
  model::add_lora(*model, cfg, 1);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : model->named_lora_parameters())
      if (name.find("lora_B") != std::string::npos) t.normal_(0, 0.05);
  }
  model::save_peft(*model, dir + "/adapter", kFixture);

  ASSERT_EQ(run_ctm("merge --model_path " + kFixture + " --lora_path " + dir + "/adapter --output_dir " +
                    dir + "/merged"),
            0);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(file_exists(dir + "/merged/" + f)) << f;
  EXPECT_EQ(read_file(dir + "/merged/tokenizer.json"), read_file(kFixture + "/tokenizer.json"));
  EXPECT_EQ(read_json_file(dir + "/merged/config.json"), read_json_file(kFixture + "/config.json"));

  // logprobs with --lora_path == logprobs of the merged folder == the in-process adapter model.
  const std::string cases = kFixture + "/cases.jsonl";
  ASSERT_EQ(run_ctm("logprobs --model_path " + kFixture + " --lora_path " + dir + "/adapter --input " +
                    cases + " --output " + dir + "/lora.jsonl"),
            0);
  ASSERT_EQ(run_ctm("logprobs --model_path " + dir + "/merged --input " + cases + " --output " + dir +
                    "/merged.jsonl"),
            0);
  const auto with_lora = read_jsonl(dir + "/lora.jsonl");
  const auto merged = read_jsonl(dir + "/merged.jsonl");
  const auto base = read_jsonl(cases);
  ASSERT_EQ(with_lora.size(), base.size());
  ASSERT_EQ(merged.size(), base.size());
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < base.size(); ++i) {
    const auto ids = base[i]["ids"].get<std::vector<int64_t>>();
    const auto lp =
        model::sequence_logprobs(*model, model::pad_batch({ids}, torch::kCPU))[0].to(torch::kFloat64);
    const Json expect(std::vector<double>(lp.data_ptr<double>(), lp.data_ptr<double>() + lp.size(0)));
    EXPECT_LT(max_diff(with_lora[i]["logprobs"], expect), 1e-5) << "line " << i + 1;
    EXPECT_LT(max_diff(merged[i]["logprobs"], expect), 1e-4) << "line " << i + 1;
    EXPECT_GT(max_diff(with_lora[i]["logprobs"], base[i]["logprobs"]), 1e-3);  // the adapter matters
  }
}

TEST(MergeTask, NeedsOutputDirAndAdapter) {
  EXPECT_NE(run_ctm("merge --model_path " + kFixture + " --lora_path /nonexistent 2> /dev/null"), 0);
  EXPECT_NE(run_ctm("merge --model_path " + kFixture + " --output_dir /tmp/x 2> /dev/null"), 0);
}

}  // namespace
}  // namespace ctm::tasks
