// The table of tasks: name, one-line summary, its options, its entry point. A row whose run is nullptr is a
// task that is not implemented yet: ctm says so and exits 3.
#include <algorithm>

#include "ctm/tasks/all.hpp"
#include "ctm/tasks/task.hpp"

namespace ctm::tasks {

const std::vector<TaskInfo>& all_tasks() {
  static const std::vector<TaskInfo> tasks = {
      // The paper's pipeline (DESIGN.md §1).
      {"prepare_startup_data",
       "sample 64 answers per train question, grade, select SFT pos/neg and DPO pairs",
       add_prepare_startup_data_options, run_prepare_startup_data},
      {"train_ce", "LoRA SFT of the positive and the negative model (contrastive estimation)", nullptr,
       nullptr},
      {"calculate_ce_score", "contrastive-estimation score of every token of every DPO pair (HDF5)", nullptr,
       nullptr},
      {"train_cdpo", "cDPO: token-weighted DPO LoRA training with the CE scores", nullptr, nullptr},
      {"evaluation", "accuracy on the test split (base, --lora_path or --model_path)", add_evaluation_options,
       run_evaluation},
      {"sampling", "rollout sampling around every token of incorrect trajectories (HDF5)", nullptr, nullptr},
      {"analyse", "critical token per trajectory and pass@k with and without it", nullptr, nullptr},
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

void add_common_options(po::options_description& desc, CommonOptions& c) {
  // clang-format off
  desc.add_options()
    ("task_name", po::value(&c.task_name), "task to run (also accepted as the first word: ctm <task> ...)")
    ("model_name", po::value(&c.model_name), "model name: Meta-Llama-3-8B, Meta-Llama-3-70B, deepseek-math-7b-base, "
                                              "Qwen2.5-7B, Qwen2.5-32B, tiny, or any folder name under $CTM_MODELS")
    ("dataset_name", po::value(&c.dataset_name), "GSM8K | MATH | ARITH")
    ("lora_path", po::value(&c.lora_path), "LoRA adapter folder (PEFT format)")
    ("model_path", po::value(&c.model_path), "Hugging Face model folder (overrides --model_name lookup)")
    ("gpus", po::value(&c.gpus), "with --device cuda: the node's GPUs for its ranks, e.g. 0,1 (rank r takes "
                                "the local-rank-th; default: every visible GPU)")
    ("t", po::value(&c.t)->default_value(c.t), "sampling temperature for evaluation (0 = greedy)")
    ("sampling_n", po::value(&c.sampling_n)->default_value(c.sampling_n), "samples per question (1 at t = 0)")
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

}  // namespace ctm::tasks
