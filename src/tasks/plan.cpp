#include "ctm/tasks/plan.hpp"

#include <filesystem>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/safetensors.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/lora_training.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;

void add_dry_run_option(po::options_description& desc) {
  desc.add_options()(
      "dry_run", po::bool_switch()->default_value(false),
      "check every input, print the plan (items, ranks, outputs, memory per rank), write nothing");
}

bool dry_run(const TaskContext& ctx) {
  return ctx.vm.count("dry_run") && ctx.vm["dry_run"].as<bool>();
}

ModelCheck check_model_folder(const std::string& dir) {
  const model::ModelConfig config = model::ModelConfig::load(dir + "/config.json");
  const io::SafetensorsSet weights(dir);
  model::check_parameter_count(config, weights, dir);
  return ModelCheck{dir, config, load_model_tokenizer(dir, config)};
}

std::string check_adapter_folder(const std::string& dir) {
  const std::string config_path = dir + "/adapter_config.json";
  const model::LoraConfig cfg = model::lora_config_from_peft(read_json_file(config_path), config_path);
  const io::SafetensorsSet weights(dir + "/adapter_model.safetensors");
  CTM_CHECK(!weights.names().empty(), dir, "/adapter_model.safetensors holds no tensor");
  return str("r ", cfg.r, " on ", cfg.target_modules.size(), " projections, ", weights.names().size(),
             " tensors");
}

int64_t device_dtype_bytes(const CommonOptions& common) {
  return common.device.rfind("cuda", 0) == 0 ? 2 : 4;
}

void Plan::model(const TaskContext& ctx, const ModelCheck& m) {
  const int64_t b = device_dtype_bytes(ctx.common);
  add("model", str(m.dir, ": ", m.config.architecture(), ", ", m.config.num_parameters(), " parameters (",
                   model::format_bytes(m.config.num_parameters() * b), b == 2 ? " bfloat16" : " float32",
                   " on ", ctx.common.device, ")"));
  add("ranks", str(ctx.comm.size(), " (", ctx.comm.local_size(), " on this node)"));
}

void Plan::memory(const model::Footprint& f) {
  std::string parts;
  auto part = [&](const char* what, int64_t bytes) {
    if (bytes > 0) parts += str(parts.empty() ? "" : " + ", what, " ", model::format_bytes(bytes));
  };
  part(f.resident_bytes < f.model_bytes ? "weight shards" : "weights", f.resident_bytes);
  part("gathered block", f.gathered_bytes);
  part("LoRA + AdamW", f.lora_bytes);
  part("activations (at most)", f.activation_bytes);
  part("KV cache (at most)", f.kv_cache_bytes);
  add("memory/rank", str(model::format_bytes(f.total()), " = ", parts));
}

void Plan::resume_state(const std::string& output, const std::string& if_complete) {
  std::error_code ec;
  if (fs::is_directory(output + ".parts", ec)) {
    add("resumes", str("from the journal in ", output, ".parts"));
  } else if (file_exists(output + ".state/trainer_state.json")) {
    const Json state = read_json_file(output + ".state/trainer_state.json");
    add("resumes", str("from the checkpoint of update ", state.value("step", 0), " in ", output,
                       ".state (if it was made with these settings; else the run stops with an error)"));
  } else if (fs::exists(output, ec)) {
    add("exists", str(output, ": ", if_complete));
  }
}

void Plan::print(const TaskContext& ctx) const {
  if (ctx.comm.rank() != 0) return;
  std::cout << "ctm " << task_ << " --dry_run: the inputs are valid; nothing was written\n";
  for (const auto& [label, value] : lines_) {
    std::string l = label;
    l.resize(std::max<size_t>(12, l.size()), ' ');
    std::cout << "  " << l << " " << value << "\n";
  }
  std::cout.flush();
}

Plan sampling_plan(const TaskContext& ctx, const std::string& task, const std::string& model_dir,
                   data::DatasetKind kind, const std::vector<data::Problem>& problems, int64_t n,
                   int64_t max_new_tokens, const std::string& split) {
  const ModelCheck m = check_model_folder(model_dir);
  Plan plan(task);
  plan.model(ctx, m);
  const std::string& adapter = ctx.common.lora_path;
  if (!adapter.empty()) plan.add("adapter", str(adapter, ": ", check_adapter_folder(adapter), ", merged"));
  const data::PromptBuilder prompts(kind, data_dir());
  size_t longest = 0;
  for (const data::Problem& p : problems)
    longest = std::max(longest, m.tokenizer.encode(prompts.build(p.question), false).size());
  plan.add("items", str(problems.size(), " questions of ", split, " x ", n, n == 1 ? " sample" : " samples",
                        ", prompts up to ", longest, " tokens, up to ", max_new_tokens, " new tokens each"));
  const engine::EngineOptions e = engine_options(ctx, "");
  model::FootprintQuery q;
  q.dtype_bytes = device_dtype_bytes(ctx.common);
  const int64_t needed = e.max_batch * (static_cast<int64_t>(longest) + max_new_tokens) *
                         model::kv_bytes_per_token(m.config, q.dtype_bytes);
  q.kv_cache_bytes = std::min<int64_t>(needed, e.kv_budget_bytes);
  plan.memory(model::estimate_footprint(m.config, q));
  return plan;
}

void plan_training(Plan& plan, const TaskContext& ctx, const ModelCheck& m, const LoraTraining& t,
                   const std::string& what, int64_t examples, int64_t sequences, int64_t longest) {
  const train::TrainerOptions& o = t.trainer;
  plan.add("items", str(what, ", sequences up to ", longest, " tokens"));
  plan.add("updates",
           str(train::count_updates(o, examples, ctx.comm.size()), o.max_steps > 0 ? " (--max_steps)" : "",
               ", each ", o.grad_accum_steps, " micro-batches of ", o.micro_batch_size, " per rank"));
  model::FootprintQuery q;
  q.dtype_bytes = device_dtype_bytes(ctx.common);
  q.ranks = ctx.comm.size();
  q.sharded = t.fsdp;
  q.lora_r = t.lora.r;
  q.lora_targets = t.lora.target_modules;
  q.tokens_per_micro_batch = o.micro_batch_size * sequences * std::min(longest, t.max_length);
  plan.add("fsdp", t.fsdp ? str("on: the base sharded over ", q.ranks, " ranks") : std::string("off"));
  plan.memory(model::estimate_footprint(m.config, q));
}

}  // namespace ctm::tasks
