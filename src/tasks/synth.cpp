// ctm synth: writes the ARITH synthetic data set (DESIGN.md §6) as data/arith/{train,test}.jsonl under
// --output_dir and prints its statistics. Rank 0 does the work; the generator is deterministic in --seed.
#include <iostream>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/arith.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"

namespace ctm::tasks {

void add_synth_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("train_size", po::value<int64_t>()->default_value(20000), "problems in data/arith/train.jsonl")
    ("test_size", po::value<int64_t>()->default_value(1000), "problems in data/arith/test.jsonl");
  // clang-format on
}

int run_synth(const TaskContext& ctx) {
  const auto& common = ctx.common;
  if (!common.dataset_name.empty() && data::parse_dataset(common.dataset_name) != data::DatasetKind::ARITH)
    throw UsageError(str("synth generates ARITH only, not --dataset_name ", common.dataset_name));
  const int64_t train_size = ctx.vm["train_size"].as<int64_t>();
  const int64_t test_size = ctx.vm["test_size"].as<int64_t>();
  if (train_size < 0 || test_size < 0) throw UsageError("--train_size and --test_size must be >= 0");
  if (ctx.comm.rank() != 0) return 0;

  const auto splits = data::generate_arith_splits(train_size, test_size, common.seed);
  const std::string dir = output_path(common, "data/arith");
  data::write_arith_jsonl(dir + "/train.jsonl", splits.train);
  data::write_arith_jsonl(dir + "/test.jsonl", splits.test);
  spdlog::info("wrote {}/train.jsonl ({} problems) and {}/test.jsonl ({} problems), seed {}", dir,
               splits.train.size(), dir, splits.test.size(), common.seed);
  std::cout << "ARITH seed " << common.seed << " (" << splits.skipped_duplicates
            << " duplicate questions skipped)\n"
            << data::format_arith_stats("train", data::arith_stats(splits.train))
            << data::format_arith_stats("test", data::arith_stats(splits.test));
  return 0;
}

}  // namespace ctm::tasks
