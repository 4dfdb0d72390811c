// What every task receives: the common options (the paper's flags and ctm's own), its own parsed options, and
// the communicator. Tasks orchestrate: they call the modules below and write outputs; they hold no algorithm.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/dist/comm.hpp"

namespace ctm::tasks {

namespace po = boost::program_options;

struct CommonOptions {
  std::string task_name;
  std::string model_name;
  std::string dataset_name;
  std::string lora_path;
  std::string model_path;
  std::string gpus;  // e.g. "0,1": with --device cuda, a node's local rank i takes the i-th (rank_device)
  double t = 0.0;    // sampling temperature for evaluation (0 = greedy)
  int sampling_n = 1;
  std::string cdpo_data_path;
  std::string output_dir = ".";  // root of data/, checkpoints/, output/
  std::string config;
  uint64_t seed = 42;
  std::string device = "cpu";
  std::string log_level = "info";
  int64_t max_questions = -1;  // use only the first N items of the split (-1 = all)
};

struct TaskContext {
  const CommonOptions& common;
  const po::variables_map& vm;  // the task's own options (and the common ones)
  dist::Comm& comm;
};

using AddOptionsFn = void (*)(po::options_description&);
using RunFn = int (*)(const TaskContext&);

struct TaskInfo {
  const char* name;
  const char* summary;
  AddOptionsFn add_options;  // nullptr: no options of its own
  RunFn run;                 // nullptr: not implemented yet
};

const std::vector<TaskInfo>& all_tasks();
const TaskInfo* find_task(const std::string& name);

// The paper samples 64 answers per question for data selection and 64 rollouts per position.
constexpr int64_t kPaperSamples = 64;

// The options every task accepts (task: --t and --sampling_n show the defaults that task really uses).
void add_common_options(po::options_description& desc, CommonOptions& common, const std::string& task);
// Every option of a task: the common ones (+ --help) and its own.
void describe_task_options(const TaskInfo& task, CommonOptions& common, po::options_description& all);
// Parses a task's arguments (those after its name): the command line, then a --config file (`key = value`
// lines; the command line wins), then the defaults; the common options are range-checked. ctm::UsageError on
// any problem. The task's own `what` option, if it has one, is also its first positional word.
po::variables_map parse_task_options(const TaskInfo& task, const std::vector<std::string>& args,
                                     CommonOptions& common);

// Their ranges (--t finite in [0, 100], --sampling_n, --max_questions -1 or >= 1, --device), checked before
// any model is loaded; ctm::UsageError naming the option.
void check_common_options(const CommonOptions& common);

}  // namespace ctm::tasks
