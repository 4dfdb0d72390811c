// The table of tasks: name, one-line summary, its options, its entry point. A row whose run is nullptr is a
// task that is not implemented yet: ctm says so and exits 3.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/engine/engine.hpp"

#include "ctm/tasks/all.hpp"
#include "ctm/tasks/task.hpp"

namespace ctm::tasks {

const std::vector<TaskInfo>& all_tasks() {
  static const std::vector<TaskInfo> tasks = {
      // The paper's pipeline (DESIGN.md §1).
      {"prepare_startup_data",
       "sample 64 answers per train question, grade, select SFT pos/neg and DPO pairs",
       add_prepare_startup_data_options, run_prepare_startup_data},
      {"train_ce", "LoRA SFT of the positive and the negative model (contrastive estimation)",
       add_train_ce_options, run_train_ce},
      {"calculate_ce_score", "contrastive-estimation score of every token of every DPO pair (HDF5)",
       add_calculate_ce_score_options, run_calculate_ce_score},
      {"train_cdpo", "cDPO: token-weighted DPO LoRA training with the CE scores (also --loss dpo | rpo)",
       add_train_cdpo_options, run_train_cdpo},
      {"train_sft", "LoRA SFT on the chosen responses (the paper's +SFT baseline)", add_train_sft_options,
       run_train_sft},
      {"pipeline", "the whole method: data, CE models, scores, cDPO and its baselines, evaluated (Table 1)",
       add_pipeline_options, run_pipeline},
      {"evaluation", "accuracy on the test split (base, --lora_path or --model_path)", add_evaluation_options,
       run_evaluation},
      {"sampling", "rollout sampling around every token of incorrect trajectories (HDF5)",
       add_sampling_options, run_sampling},
      {"analyse", "critical token per trajectory and pass@k with and without it", add_analyse_options,
       run_analyse},
      {"merge", "merge a LoRA adapter into its base and save a Hugging Face model folder", add_merge_options,
       run_merge},
      // The embedded default.
      {"synth", "generate the ARITH synthetic data set (train and test splits)", add_synth_options,
       run_synth},
      {"pretrain", "train the embedded tiny model (tokenizer + transformer) from scratch",
       add_pretrain_options, run_pretrain},
      // Tools.
      {"grade", "grade completions against gold answers (paper or math grader)", add_grade_options,
       run_grade},
      {"tokenize", "token ids of JSONL texts with a Hugging Face tokenizer.json", add_tokenize_options,
       run_tokenize},
      {"logprobs", "log-probability of every token of JSONL sequences under a model", add_logprobs_options,
       run_logprobs},
      {"generate", "sample completions for JSONL prompts", add_generate_options, run_generate},
      {"bench", "benchmarks (tokenizer, sampling) that print a table", add_bench_options, run_bench},
  };
  return tasks;
}

const TaskInfo* find_task(const std::string& name) {
  const auto& tasks = all_tasks();
  auto it = std::find_if(tasks.begin(), tasks.end(), [&](const TaskInfo& t) { return name == t.name; });
  return it == tasks.end() ? nullptr : &*it;
}

namespace {

// Tasks that sample at the paper's temperature (DESIGN.md §2 table) with 64 samples unless told otherwise.
// Tasks that sample, or read the samples of, the startup data: their --t and --sampling_n default to the
// paper's table and 64 (and pick the files of that run tag).
bool samples_at_paper_settings(const std::string& task) {
  for (const char* t : {"prepare_startup_data", "train_ce", "calculate_ce_score", "train_cdpo", "train_sft",
                        "sampling", "pipeline"})
    if (task == t) return true;
  return false;
}

}  // namespace

void add_common_options(po::options_description& desc, CommonOptions& c, const std::string& task) {
  if (samples_at_paper_settings(task)) {
    c.sampling_n = static_cast<int>(kPaperSamples);
    desc.add_options()("t", po::value(&c.t),
                       "temperature of the startup data's sampling (default: the model's from the paper's "
                       "table: Llama-3-8B GSM8K 0.5, "
                       "..., tiny ARITH 1.0)")(
        "sampling_n", po::value(&c.sampling_n)->default_value(c.sampling_n), "samples per question");
  } else {
    desc.add_options()("t", po::value(&c.t)->default_value(c.t),
                       "sampling temperature for evaluation (0 = greedy)")(
        "sampling_n", po::value(&c.sampling_n)->default_value(c.sampling_n),
        "samples per question (1 at t = 0)");
  }
  // clang-format off
  desc.add_options()
    ("task_name", po::value(&c.task_name), "task to run (also accepted as the first word: ctm <task> ...)")
    ("model_name", po::value(&c.model_name), "model name: Meta-Llama-3-8B, Meta-Llama-3-70B, deepseek-math-7b-base, "
                                              "Qwen2.5-7B, Qwen2.5-32B, tiny, or any folder name under $CTM_MODELS")
    ("dataset_name", po::value(&c.dataset_name), "GSM8K | MATH | ARITH")
    ("lora_path", po::value(&c.lora_path), "LoRA adapter folder (PEFT format), applied to the base model; also with --model_path (the release ignores the adapter then)")
    ("model_path", po::value(&c.model_path), "Hugging Face model folder (overrides --model_name lookup)")
    ("gpus", po::value(&c.gpus), "with --device cuda: the node's GPUs for its ranks, e.g. 0,1 (rank r takes "
                                "the local-rank-th; default: every visible GPU)")
    ("cdpo_data_path", po::value(&c.cdpo_data_path), "DPO pair file (source of rollout sampling)")
    ("output_dir", po::value(&c.output_dir)->default_value(c.output_dir), "root of data/, checkpoints/, output/")
    ("config", po::value(&c.config), "options file (key = value lines); the command line wins over it")
    ("seed", po::value(&c.seed)->default_value(c.seed), "seed of every random draw")
    ("device", po::value(&c.device)->default_value(c.device), "cpu | cuda")
    ("log_level", po::value(&c.log_level)->default_value(c.log_level), "trace | debug | info | warn | error | off")
    ("max_questions", po::value(&c.max_questions)->default_value(c.max_questions),
     "use only the first N items of the split (-1 = all)");
  // clang-format on
}

// The common options' ranges, checked before any model is loaded.
void check_common_options(const CommonOptions& c) {
  if (!std::isfinite(c.t) || c.t < 0 || c.t > 100)
    throw UsageError(str("--t must be a temperature in [0, 100] (got ", c.t, ")"));
  if (c.sampling_n < 1 || c.sampling_n > engine::kMaxSamplesPerRequest)
    throw UsageError(
        str("--sampling_n must be in [1, ", engine::kMaxSamplesPerRequest, "] (got ", c.sampling_n, ")"));
  if (c.max_questions < 1 && c.max_questions != -1)
    throw UsageError(str("--max_questions must be >= 1, or -1 for all (got ", c.max_questions, ")"));
  if (c.device != "cpu" && c.device != "cuda" && c.device.rfind("cuda:", 0) != 0)
    throw UsageError(str("--device must be cpu or cuda (got '", c.device, "')"));
}

namespace {

// `key = value` lines of a --config file (a UTF-8 byte-order mark, as some editors write, is skipped).
void store_config_file(const std::string& file, const po::options_description& all, po::variables_map& vm) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    throw UsageError(str("--config: ", e.what()));
  }
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  std::istringstream in(text);
  try {
    po::store(po::parse_config_file(in, all), vm);
  } catch (const po::error& e) {
    throw UsageError(str("--config '", file, "': ", e.what()));
  }
}

}  // namespace

void describe_task_options(const TaskInfo& task, CommonOptions& common, po::options_description& all) {
  po::options_description common_desc("common options");
  add_common_options(common_desc, common, task.name);
  common_desc.add_options()("help,h", "show the options of this task");
  po::options_description task_desc(str("options of ", task.name));
  if (task.add_options) task.add_options(task_desc);
  all.add(common_desc).add(task_desc);
}

po::variables_map parse_task_options(const TaskInfo& task, const std::vector<std::string>& args,
                                     CommonOptions& common) {
  po::options_description all;
  describe_task_options(task, common, all);
  po::variables_map vm;
  try {
    // Command line first: po::store never overwrites, so the command line beats the file beats the defaults.
    po::positional_options_description positional;
    if (all.find_nothrow("what", false)) positional.add("what", 1);
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), all, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  common.task_name = task.name;
  check_common_options(common);
  return vm;
}

}  // namespace ctm::tasks
