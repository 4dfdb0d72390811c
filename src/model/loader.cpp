#include "ctm/model/loader.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/io/json.hpp"

namespace ctm::model {

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error(ctm::str("--device ", name, ": CUDA is not available in this build or on this machine"));
    try {
      return torch::Device(name);
    } catch (const std::exception&) {
      throw Error(ctm::str("--device ", name, ": not a device (expected cpu, cuda or cuda:N)"));
    }
  }
  throw Error(ctm::str("--device ", name, ": unknown device (expected cpu, cuda or cuda:N)"));
}

torch::Dtype default_dtype(torch::Device device) {
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

torch::Dtype to_torch_dtype(io::DType dt, const std::string& where) {
  switch (dt) {
    case io::DType::F32:
      return torch::kFloat32;
    case io::DType::F16:
      return torch::kFloat16;
    case io::DType::BF16:
      return torch::kBFloat16;
    case io::DType::F64:
      return torch::kFloat64;
    case io::DType::I64:
      return torch::kInt64;
    case io::DType::I32:
      return torch::kInt32;
    case io::DType::I16:
      return torch::kInt16;
    case io::DType::I8:
      return torch::kInt8;
    case io::DType::U8:
      return torch::kUInt8;
    case io::DType::BOOL:
      return torch::kBool;
    default:
      throw Error(ctm::str(where, ": dtype ", io::dtype_name(dt), " has no torch equivalent"));
  }
}

io::DType to_io_dtype(torch::Dtype dt) {
  switch (dt) {
    case torch::kFloat32:
      return io::DType::F32;
    case torch::kFloat16:
      return io::DType::F16;
    case torch::kBFloat16:
      return io::DType::BF16;
    case torch::kFloat64:
      return io::DType::F64;
    case torch::kInt64:
      return io::DType::I64;
    case torch::kInt32:
      return io::DType::I32;
    case torch::kInt16:
      return io::DType::I16;
    case torch::kInt8:
      return io::DType::I8;
    case torch::kUInt8:
      return io::DType::U8;
    case torch::kBool:
      return io::DType::BOOL;
    default:
      throw Error(ctm::str("no safetensors dtype for torch dtype ", c10::toString(dt)));
  }
}

std::string torch_dtype_name(torch::Dtype dt) {
  switch (dt) {
    case torch::kFloat32:
      return "float32";
    case torch::kFloat16:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat64:
      return "float64";
    default:
      return c10::toString(dt);
  }
}

namespace {

// Copies n bytes of stored data (src_dtype, shape) into dest, converting dtype and device as needed.
void copy_stored(const uint8_t* src, torch::Dtype src_dtype, const std::vector<int64_t>& shape, std::size_t n,
                 torch::Tensor& dest) {
  torch::NoGradGuard no_grad;
  if (dest.is_cpu() && dest.scalar_type() == src_dtype && dest.is_contiguous()) {
    std::memcpy(dest.data_ptr(), src, n);  // straight from the mapping into the weight
  } else if (reinterpret_cast<uintptr_t>(src) % c10::elementSize(src_dtype) == 0) {
    // A view of the mapping (never written: copy_ only reads it), converted/transferred by copy_.
    auto view = torch::from_blob(const_cast<uint8_t*>(src), shape, torch::dtype(src_dtype));
    dest.copy_(view);
  } else {
    // Unaligned data: bounce through one aligned tensor of this size.
    auto aligned = torch::empty(shape, torch::dtype(src_dtype));
    std::memcpy(aligned.data_ptr(), src, n);
    dest.copy_(aligned);
  }
}

}  // namespace

void copy_tensor_from(const io::SafetensorsFile& file, const io::TensorInfo& info, torch::Tensor& dest) {
  const std::vector<int64_t> expected = dest.sizes().vec();
  if (info.shape != expected)
    throw Error(ctm::str(file.path(), ": tensor \"", info.name, "\": shape ", c10::IntArrayRef(info.shape),
                         ", expected ", c10::IntArrayRef(expected)));
  if (info.shape.empty()) {  // a scalar has no rows
    copy_stored(file.data(info), to_torch_dtype(info.dtype, info.name), info.shape, info.nbytes(), dest);
    file.release(info);
    return;
  }
  copy_rows_from(file, info, 0, dest);
}

void copy_rows_from(const io::SafetensorsFile& file, const io::TensorInfo& info, int64_t row_begin,
                    torch::Tensor& dest) {
  const std::string where = ctm::str(file.path(), ": tensor \"", info.name, "\"");
  std::vector<int64_t> rows_shape = dest.sizes().vec();
  const bool fits = !info.shape.empty() && rows_shape.size() == info.shape.size() &&
                    std::equal(info.shape.begin() + 1, info.shape.end(), rows_shape.begin() + 1) &&
                    row_begin >= 0 && row_begin + rows_shape[0] <= info.shape[0];
  if (!fits)
    throw Error(ctm::str(where, ": shape ", c10::IntArrayRef(info.shape), " has no rows [", row_begin, ", ",
                         row_begin + (rows_shape.empty() ? 0 : rows_shape[0]), ") of shape ",
                         c10::IntArrayRef(rows_shape)));
  if (info.shape[0] == 0 || rows_shape[0] == 0) return;
  const uint64_t row_bytes = info.nbytes() / static_cast<uint64_t>(info.shape[0]);
  const uint64_t begin = info.begin + static_cast<uint64_t>(row_begin) * row_bytes;
  const uint64_t n = static_cast<uint64_t>(rows_shape[0]) * row_bytes;
  copy_stored(file.data(info) + (begin - info.begin), to_torch_dtype(info.dtype, where), rows_shape, n, dest);
  file.release(begin, begin + n);
}

void check_parameter_count(const ModelConfig& config, const io::SafetensorsSet& weights,
                           const std::string& dir) {
  int64_t stored = 0;
  for (const auto& name : weights.names()) stored += weights.info(name).numel();
  if (config.num_parameters() > stored)
    throw Error(ctm::str(dir, "/config.json describes ", config.num_parameters(),
                         " parameters but the weights hold ", stored,
                         " (is config.json the one of these weights?)"));
}

void check_weight_names(const Transformer& model, const io::SafetensorsSet& weights, const std::string& dir) {
  const ModelConfig& config = model.config();
  std::set<std::string> expected;
  for (auto& [name, tensor] : model.named_parameters()) {
    expected.insert(name);
    if (!weights.contains(name))
      throw Error(ctm::str(dir, ": missing tensor \"", name, "\" (", config.architecture(), ")"));
  }
  for (const auto& name : weights.names()) {
    if (expected.count(name)) continue;
    // Buffers some exporters write, and a tied head stored anyway: not weights of this model.
    if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    throw Error(ctm::str(weights.file_of(name).path(), ": unexpected tensor \"", name, "\" for a ",
                         config.architecture(), " with this config.json"));
  }
}

std::shared_ptr<Transformer> load_model(const std::string& dir, torch::Device device, torch::Dtype dtype) {
  const ModelConfig config = ModelConfig::load(dir + "/config.json");
  io::SafetensorsSet weights(dir);
  // Before allocating anything: a typo in hidden_size would otherwise ask for terabytes.
  check_parameter_count(config, weights, dir);
  auto model = std::make_shared<Transformer>(config, device, dtype);
  check_weight_names(*model, weights, dir);
  for (auto& [name, tensor] : model->named_parameters()) {
    torch::Tensor dest = tensor;  // shares storage with the model's weight
    copy_tensor_from(weights.file_of(name), weights.info(name), dest);
  }
  return model;
}

std::shared_ptr<Transformer> init_model(const ModelConfig& config, uint64_t seed, torch::Device device,
                                        torch::Dtype dtype) {
  auto model = std::make_shared<Transformer>(config, device, dtype);
  torch::NoGradGuard no_grad;
  uint64_t index = 0;
  for (auto& [name, tensor] : model->named_parameters()) {
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm) {
      tensor.fill_(1.0);
    } else if (is_bias) {
      tensor.zero_();
    } else {
      auto gen = at::detail::createCPUGenerator(mix_seed(seed, index, 0));
      auto values = torch::empty(tensor.sizes(), torch::kFloat32);
      values.normal_(0.0, config.initializer_range, gen);
      tensor.copy_(values);
    }
    ++index;
  }
  return model;
}

namespace {

io::TensorToWrite tensor_to_write(const std::string& name, const torch::Tensor& t) {
  io::TensorToWrite w;
  w.name = name;
  w.dtype = to_io_dtype(t.scalar_type());
  w.shape = t.sizes().vec();
  if (t.is_cpu() && t.is_contiguous()) {
    w.data = t.data_ptr();
  } else {
    w.write = [t](std::ostream& out) {
      const auto cpu = t.detach().to(torch::kCPU).contiguous();
      out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(cpu.nbytes()));
    };
  }
  return w;
}

}  // namespace

void save_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<io::TensorToWrite> out;
  for (const auto& [name, t] : tensors) out.push_back(tensor_to_write(name, t));
  io::write_safetensors(path, out, metadata);
}

void save_model(const Transformer& model, const std::string& dir, uint64_t max_shard_bytes) {
  make_dirs(dir);
  ModelConfig config = model.config();
  config.torch_dtype = torch_dtype_name(model.dtype());
  write_json_file_atomic(dir + "/config.json", config.to_json());

  const auto params = model.named_parameters();
  // Shards of at most max_shard_bytes (a tensor larger than that gets a shard of its own).
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& p : params) {
    const uint64_t n = p.second.nbytes();
    if (in_shard > 0 && in_shard + n > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(p);
    in_shard += n;
    total += n;
  }
  // A stale index or single file from an earlier save would shadow (or contradict) the new weights.
  if (shards.size() == 1) {
    save_tensors(shards[0], dir + "/model.safetensors");
    std::remove((dir + "/model.safetensors.index.json").c_str());
    return;
  }
  std::remove((dir + "/model.safetensors").c_str());
  Json weight_map = Json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    save_tensors(shards[i], dir + "/" + file);
    for (const auto& p : shards[i]) weight_map[p.first] = file;
  }
  Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_json_file_atomic(dir + "/model.safetensors.index.json", index);
}

}  // namespace ctm::model
