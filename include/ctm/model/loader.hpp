// Hugging Face model folders: config.json + model.safetensors (or shards with model.safetensors.index.json).
// The one place that knows the Hugging Face tensor names and file layout.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "ctm/io/safetensors.hpp"
#include "ctm/model/config.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::model {

// "cpu" | "cuda" | "cuda:N" -> a device; ctm::Error if CUDA is asked for and not available.
torch::Device parse_device(const std::string& name);
// float32 on CPU, bfloat16 on CUDA (the project's convention).
torch::Dtype default_dtype(torch::Device device);
torch::Dtype to_torch_dtype(io::DType dt, const std::string& where);  // floating dtypes only
io::DType to_io_dtype(torch::Dtype dt);
std::string torch_dtype_name(torch::Dtype dt);  // "float32", "bfloat16", "float16"

// Loads a Hugging Face folder. Weights are copied straight from the memory-mapped files into tensors of the
// requested dtype on the requested device, one tensor at a time, and each tensor's mapped pages are released
// after the copy, so the peak memory is the model plus one tensor, not the file plus the model.
// Unknown tensors, missing tensors and shape mismatches are errors naming the tensor.
std::shared_ptr<Transformer> load_model(const std::string& dir, torch::Device device, torch::Dtype dtype);

// Copies one stored tensor into `dest` (shape must match; dtype/device conversion as needed).
void copy_tensor_from(const io::SafetensorsFile& file, const io::TensorInfo& info, torch::Tensor& dest);
// Copies rows [row_begin, row_begin + dest.size(0)) (dim 0) of a stored tensor into `dest`, whose other dims
// must match: only those rows' bytes are read from the mapping, and released after.
void copy_rows_from(const io::SafetensorsFile& file, const io::TensorInfo& info, int64_t row_begin,
                    torch::Tensor& dest);
// ctm::Error when config.json describes more parameters than the folder's files hold (checked before any
// allocation: a typo in hidden_size would otherwise ask for terabytes).
void check_parameter_count(const ModelConfig& config, const io::SafetensorsSet& weights,
                           const std::string& dir);
// ctm::Error naming the tensor when a base weight of the model is missing from the folder's files or the
// files hold a tensor the model does not have (except rotary buffers and a stored tied head).
void check_weight_names(const Transformer& model, const io::SafetensorsSet& weights, const std::string& dir);

// Random initialisation for pretraining, as Hugging Face's _init_weights: every Linear and the embedding
// normal(0, initializer_range), biases 0, norms 1. Each tensor draws from its own generator seeded with
// mix_seed(seed, tensor index, 0), so the result does not depend on device or dtype. requires_grad is false:
// call set_requires_grad(true) for full-parameter training.
std::shared_ptr<Transformer> init_model(const ModelConfig& config, uint64_t seed, torch::Device device,
                                        torch::Dtype dtype);

// Writes config.json and model.safetensors (Hugging Face names, the model's dtype; tensors copied to the CPU
// one at a time). Above max_shard_bytes the weights are split into model-0000i-of-0000n.safetensors with
// model.safetensors.index.json, as Hugging Face does. LoRA adapters are not written (see lora.hpp: save_peft,
// merge_lora). Every file is written atomically.
void save_model(const Transformer& model, const std::string& dir, uint64_t max_shard_bytes = 5ull << 30);

// Writes named tensors to a safetensors file (copied to the CPU one at a time, in their own dtype).
void save_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace ctm::model
