#include "ctm/model/lora.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/io/safetensors.hpp"
#include "ctm/model/loader.hpp"

namespace ctm::model {

namespace {

const std::string kPeftPrefix = "base_model.model.";

int64_t projection_index(const std::string& name) {
  const auto& names = projection_names();
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int64_t>(it - names.begin());
}

void check_targets(const std::vector<std::string>& targets, const std::string& where) {
  if (targets.empty()) throw Error(ctm::str(where, ": LoRA target_modules is empty"));
  for (const auto& t : targets)
    if (projection_index(t) < 0)
      throw Error(ctm::str(where, ": unsupported LoRA target module \"", t,
                           "\" (supported: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)"));
}

std::shared_ptr<LoraAdapter> zero_adapter(const Linear& l, int64_t r, const LoraConfig& cfg,
                                          torch::Device device) {
  auto a = std::make_shared<LoraAdapter>();
  const auto opts = torch::dtype(torch::kFloat32).device(device);
  a->A_rI = torch::zeros({r, l.weight.size(1)}, opts);
  a->B_Or = torch::zeros({l.weight.size(0), r}, opts);
  a->scaling = cfg.scaling();
  a->dropout = cfg.dropout;
  return a;
}

}  // namespace

double LoraConfig::scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

void remove_lora(Transformer& model) {
  for (auto& L : model.layers())
    for (const auto& name : projection_names()) L.projection(name)->lora.reset();
  model.set_lora_config(std::nullopt);
}

LoraAdapters detach_lora(Transformer& model) {
  LoraAdapters out;
  out.config = model.lora_config();
  for (auto& L : model.layers())
    for (const auto& name : projection_names()) out.by_slot.push_back(std::move(L.projection(name)->lora));
  remove_lora(model);
  return out;
}

void attach_lora(Transformer& model, const LoraAdapters& adapters) {
  const size_t per_layer = projection_names().size();
  CTM_CHECK(adapters.by_slot.size() == model.layers().size() * per_layer, "attach_lora: adapters of ",
            adapters.by_slot.size() / per_layer, " layers for a model of ", model.layers().size());
  size_t slot = 0;
  for (auto& L : model.layers())
    for (const auto& name : projection_names()) L.projection(name)->lora = adapters.by_slot[slot++];
  model.set_lora_config(adapters.config);
}

void add_lora(Transformer& model, const LoraConfig& cfg, uint64_t seed) {
  check_targets(cfg.target_modules, "add_lora");
  CTM_CHECK(cfg.r > 0, "add_lora: r must be positive, got ", cfg.r);
  CTM_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, "add_lora: dropout must be in [0, 1), got ", cfg.dropout);
  remove_lora(model);
  torch::NoGradGuard no_grad;
  auto& layers = model.layers();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (const auto& name : cfg.target_modules) {
      Linear& l = *layers[i].projection(name);
      l.lora = zero_adapter(l, cfg.r, cfg, model.device());
      // PEFT: kaiming_uniform_(A, a=sqrt(5)) -> bound = 1 / sqrt(fan_in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(l.weight.size(1)));
      auto gen = at::detail::createCPUGenerator(
          mix_seed(seed, static_cast<uint64_t>(i) * 16 + static_cast<uint64_t>(projection_index(name)), 1));
      auto a = torch::empty(l.lora->A_rI.sizes(), torch::kFloat32);
      a.uniform_(-bound, bound, gen);
      l.lora->A_rI.copy_(a);
      l.lora->A_rI.set_requires_grad(true);
      l.lora->B_Or.set_requires_grad(true);
    }
  }
  model.set_lora_config(cfg);
}

Json peft_config_json(const LoraConfig& cfg, const std::string& base_model_name_or_path) {
  Json j = Json::object();
  j["alpha_pattern"] = Json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model_name_or_path;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["lora_alpha"] = cfg.alpha;
  j["lora_dropout"] = cfg.dropout;
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = cfg.r;
  j["rank_pattern"] = Json::object();
  j["revision"] = nullptr;
  j["target_modules"] = cfg.target_modules;
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = cfg.use_rslora;
  return j;
}

LoraConfig lora_config_from_peft(const Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(ctm::str(where, ": adapter config must be a JSON object"));
  const std::string type = require_string(j, "peft_type", where);
  if (type != "LORA") throw Error(ctm::str(where, ": peft_type \"", type, "\" is not supported (only LORA)"));
  LoraConfig c;
  const Json& r = require_field(j, "r", where);
  if (!r.is_number_integer() || r.get<int64_t>() <= 0)
    throw Error(ctm::str(where, ": \"r\" must be a positive integer"));
  c.r = r.get<int64_t>();
  const Json& alpha = require_field(j, "lora_alpha", where);
  if (!alpha.is_number()) throw Error(ctm::str(where, ": \"lora_alpha\" must be a number"));
  c.alpha = alpha.get<double>();
  if (auto it = j.find("lora_dropout"); it != j.end() && it->is_number()) c.dropout = it->get<double>();
  if (auto it = j.find("use_rslora"); it != j.end() && it->is_boolean()) c.use_rslora = it->get<bool>();
  auto is_true = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  auto non_empty = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && !it->is_null() && !(it->is_object() && it->empty()) &&
           !(it->is_array() && it->empty());
  };
  if (is_true("use_dora")) throw Error(ctm::str(where, ": DoRA adapters (use_dora) are not supported"));
  if (is_true("fan_in_fan_out")) throw Error(ctm::str(where, ": fan_in_fan_out adapters are not supported"));
  for (const char* key : {"rank_pattern", "alpha_pattern", "modules_to_save"})
    if (non_empty(key)) throw Error(ctm::str(where, ": \"", key, "\" is not supported"));
  if (auto it = j.find("bias"); it != j.end() && it->is_string() && it->get<std::string>() != "none")
    throw Error(ctm::str(where, ": bias \"", it->get<std::string>(), "\" is not supported (only none)"));
  const Json& targets = require_field(j, "target_modules", where);
  if (targets.is_array()) {
    for (const auto& t : targets) {
      if (!t.is_string()) throw Error(ctm::str(where, ": target_modules entries must be strings"));
      c.target_modules.push_back(t.get<std::string>());
    }
    check_targets(c.target_modules, where);
  } else if (!targets.is_string()) {
    throw Error(ctm::str(where, ": target_modules must be a list or a regular expression"));
  }
  // A regular expression: the adapter file's keys say which modules it covers (load_peft fills the list).
  return c;
}

void save_peft(const Transformer& model, const std::string& dir, const std::string& base_model_name_or_path) {
  CTM_CHECK(model.lora_config() && model.has_lora(), "save_peft: the model has no LoRA adapters");
  make_dirs(dir);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : model.named_lora_parameters()) tensors.emplace_back(kPeftPrefix + name, t.detach());
  save_tensors(tensors, dir + "/adapter_model.safetensors");
  write_json_file_atomic(dir + "/adapter_config.json",
                         peft_config_json(*model.lora_config(), base_model_name_or_path));
}

void load_peft(Transformer& model, const std::string& dir) {
  const std::string config_path = dir + "/adapter_config.json";
  LoraConfig cfg = lora_config_from_peft(read_json_file(config_path), config_path);
  const std::string weights_path = dir + "/adapter_model.safetensors";
  if (!file_exists(weights_path))
    throw Error(
        ctm::str(dir, ": no adapter_model.safetensors (PEFT's older adapter_model.bin is not supported)"));
  io::SafetensorsFile file(weights_path);
  remove_lora(model);
  // base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.lora_{A|B}[.{adapter}].weight
  static const std::regex key_re(
      R"(base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.lora_([AB])(?:\.[\w-]+)?\.weight)");
  std::map<std::pair<int64_t, std::string>, std::pair<const io::TensorInfo*, const io::TensorInfo*>> found;
  for (const auto& t : file.tensors()) {
    std::smatch m;
    if (!std::regex_match(t.name, m, key_re))
      throw Error(
          ctm::str(weights_path, ": unexpected key \"", t.name, "\" (only LoRA A/B weights of projections)"));
    const int64_t layer = std::stoll(m[1].str());
    const std::string proj = m[3].str();
    const bool mlp = proj == "gate_proj" || proj == "up_proj" || proj == "down_proj";
    if (projection_index(proj) < 0 || (m[2].str() == "mlp") != mlp)
      throw Error(ctm::str(weights_path, ": key \"", t.name, "\" names an unknown projection"));
    if (layer >= model.config().num_layers)
      throw Error(ctm::str(weights_path, ": key \"", t.name, "\" names layer ", layer, " but the model has ",
                           model.config().num_layers));
    auto& slot = found[{layer, proj}];
    (m[4].str() == "A" ? slot.first : slot.second) = &t;
  }
  if (found.empty()) throw Error(ctm::str(weights_path, ": no LoRA weights"));
  std::vector<std::string> targets;
  torch::NoGradGuard no_grad;
  for (const auto& [key, ab] : found) {
    const auto& [layer, proj] = key;
    const std::string what = ctm::str(weights_path, ": layer ", layer, " ", proj);
    if (!ab.first || !ab.second)
      throw Error(ctm::str(what, ": has lora_", ab.first ? "A" : "B", " but no lora_", ab.first ? "B" : "A"));
    if (ab.first->shape.size() != 2 || ab.first->shape[0] != cfg.r)
      throw Error(ctm::str(what, ": lora_A has rank ", ab.first->shape.empty() ? -1 : ab.first->shape[0],
                           ", config r is ", cfg.r));
    Linear& l = *model.layers()[layer].projection(proj);
    l.lora = zero_adapter(l, cfg.r, cfg, model.device());
    copy_tensor_from(file, *ab.first, l.lora->A_rI);   // shape checked against [r, in]
    copy_tensor_from(file, *ab.second, l.lora->B_Or);  // [out, r]
    l.lora->A_rI.set_requires_grad(true);
    l.lora->B_Or.set_requires_grad(true);
    if (std::find(targets.begin(), targets.end(), proj) == targets.end()) targets.push_back(proj);
  }
  if (cfg.target_modules.empty()) {
    std::sort(targets.begin(), targets.end(), [](const std::string& a, const std::string& b) {
      return projection_index(a) < projection_index(b);
    });
    cfg.target_modules = targets;
  }
  model.set_lora_config(cfg);
}

void merge_lora(Transformer& model) {
  torch::NoGradGuard no_grad;
  for (auto& L : model.layers()) {
    for (const auto& name : projection_names()) {
      Linear& l = *L.projection(name);
      if (!l.lora) continue;
      const auto delta = torch::matmul(l.lora->B_Or, l.lora->A_rI) * l.lora->scaling;  // [out, in] float32
      l.weight.copy_(l.weight.to(torch::kFloat32) + delta);
    }
  }
  remove_lora(model);
}

}  // namespace ctm::model
