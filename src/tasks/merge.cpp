// ctm merge: folds a PEFT LoRA adapter into its base model and writes a Hugging Face folder (config.json with
// the base's fields, safetensors in the base's dtype, tokenizer and generation files copied). Rank 0 only.
#include <filesystem>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"

namespace ctm::tasks {

void add_merge_options(po::options_description&) {}

int run_merge(const TaskContext& ctx) {
  if (ctx.common.lora_path.empty()) throw UsageError("merge needs --lora_path ADAPTER_DIR");
  if (ctx.vm["output_dir"].defaulted())
    throw UsageError("merge needs --output_dir OUT (the merged model folder)");
  if (ctx.comm.rank() != 0) return 0;
  const std::string base_dir = resolve_model_path(ctx.common);
  const std::string out_dir = ctx.common.output_dir;
  CTM_CHECK(std::filesystem::weakly_canonical(base_dir) != std::filesystem::weakly_canonical(out_dir),
            "merge: --output_dir must differ from the base model folder ", base_dir);
  const torch::Device device = rank_device(ctx.common, ctx.comm);

  // Keep the checkpoint's own precision (float32 for float32 files, bfloat16 for bfloat16 ones).
  Json config = read_json_file(base_dir + "/config.json");
  torch::Dtype dtype = torch::kFloat32;
  if (auto it = config.find("torch_dtype"); it != config.end() && it->is_string()) {
    if (*it == "bfloat16")
      dtype = torch::kBFloat16;
    else if (*it == "float16")
      dtype = torch::kFloat16;
  }
  auto model = model::load_model(base_dir, device, dtype);
  model::load_peft(*model, ctx.common.lora_path);
  model::merge_lora(*model);
  // The folder is replaced as a whole: a full disk half-way leaves an older merge intact.
  AtomicDir folder(out_dir);
  model::save_model(*model, folder.path());
  // The base's config.json as written by its exporter (only the dtype is ours).
  config["torch_dtype"] = model::torch_dtype_name(dtype);
  write_json_file_atomic(folder.path() + "/config.json", config);
  int copied = 0;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.model", "vocab.json", "merges.txt", "generation_config.json"}) {
    const std::string src = base_dir + "/" + name;
    if (!file_exists(src)) continue;
    write_file_atomic(folder.path() + "/" + name, read_file(src));
    ++copied;
  }
  folder.commit();
  spdlog::info("merged {} into {} -> {} ({} tokenizer/generation files copied)", ctx.common.lora_path,
               base_dir, out_dir, copied);
  return 0;
}

}  // namespace ctm::tasks
