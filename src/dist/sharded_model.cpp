#include "ctm/dist/sharded_model.hpp"

#include <algorithm>
#include <mutex>

#include "ctm/core/error.hpp"
#include "ctm/io/safetensors.hpp"
#include "ctm/model/loader.hpp"

namespace ctm::dist {

RowShard row_shard(int64_t rows, int rank, int ranks) {
  RowShard s;
  s.shard_rows = (rows + ranks - 1) / ranks;
  s.begin = std::min<int64_t>(rows, rank * s.shard_rows);
  s.count = std::min<int64_t>(rows, s.begin + s.shard_rows) - s.begin;
  return s;
}

bool fsdp_enabled(const std::string& value, const Comm& comm) {
  if (value == "on") return true;
  if (value == "off") return false;
  if (value.empty() || value == "auto") return comm.size() > 1;
  throw UsageError(str("--fsdp ", value, ": expected on, off or auto"));
}

namespace {

struct Shard {
  torch::Tensor* slot;        // where the model reads the weight
  torch::Tensor placeholder;  // what the slot holds between blocks (meta: the full shape, no memory)
  torch::Tensor local;        // this rank's rows [shard_rows, ...]
};

}  // namespace

struct ShardedModel::Shards {
  std::shared_ptr<Comm> comm;
  model::Transformer* model = nullptr;  // owns the runner that owns these shards
  std::vector<Shard> embedding;         // empty when tied to the (replicated) head
  std::vector<std::vector<Shard>> layers;
  // Gathered storages, watched without keeping them alive: the measured peak counts whatever autograd kept.
  std::vector<std::pair<c10::weak_intrusive_ptr<c10::StorageImpl>, int64_t>> live;
  ShardStats stats;

  // The shards of a block; nullptr when its weights are replicated.
  std::vector<Shard>* block(const model::BlockCall& call) {
    if (call.block == model::Block::kLayer) return &layers.at(static_cast<size_t>(call.layer));
    if (call.block == model::Block::kEmbedding && !embedding.empty()) return &embedding;
    return nullptr;
  }

  void gather(std::vector<Shard>& block) {
    for (auto& s : block) {
      CTM_CHECK(!s.placeholder.requires_grad(),
                "sharded model: base weights are frozen (LoRA training only)");
      auto sizes = s.local.sizes().vec();
      sizes[0] *= comm->size();
      auto full = torch::empty(sizes, s.local.options());
      comm->allgather(s.local, full);
      *s.slot = full.narrow(0, 0, s.placeholder.size(0));
      watch(full);
    }
    ++stats.gathers;
  }
  static void release(std::vector<Shard>& block) {
    for (auto& s : block) *s.slot = s.placeholder;
  }
  void watch(const torch::Tensor& full) {
    live.erase(std::remove_if(live.begin(), live.end(), [](const auto& w) { return w.first.expired(); }),
               live.end());
    live.emplace_back(full.storage().getWeakStorageImpl(), static_cast<int64_t>(full.nbytes()));
    int64_t bytes = 0;
    for (const auto& w : live) bytes += w.second;
    stats.peak_gathered_bytes = std::max(stats.peak_gathered_bytes, bytes);
  }

  // The LoRA tensors of a block that autograd must reach.
  std::vector<torch::Tensor> trainable(const model::BlockCall& call) const {
    std::vector<torch::Tensor> out;
    if (call.block != model::Block::kLayer) return out;
    auto& L = model->layers().at(static_cast<size_t>(call.layer));
    for (const auto& name : model::projection_names()) {
      const auto& lora = L.projection(name)->lora;
      if (!lora) continue;
      for (const auto& t : {lora->A_rI, lora->B_Or})
        if (t.requires_grad()) out.push_back(t);
    }
    return out;
  }
};

namespace {

using Shards = ShardedModel::Shards;

// A block's weights gathered into the model for the lifetime of this object.
class Gathered {
 public:
  Gathered(Shards& shards, std::vector<Shard>& block) : block_(block) {
    try {
      shards.gather(block);
    } catch (...) {
      Shards::release(block);
      throw;
    }
  }
  ~Gathered() { Shards::release(block_); }
  Gathered(const Gathered&) = delete;
  Gathered& operator=(const Gathered&) = delete;

 private:
  std::vector<Shard>& block_;
};

// The generator dropout draws from, set to a saved state for the lifetime of this object: a recomputed block
// draws the masks its forward drew, and the draws after the backward are those there would have been.
class GeneratorState {
 public:
  GeneratorState(torch::Device device, const torch::Tensor& state)
      : gen_(at::globalContext().defaultGenerator(device)) {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    saved_ = gen_.get_state();
    gen_.set_state(state);
  }
  ~GeneratorState() {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(saved_);
  }
  static torch::Tensor now(torch::Device device) {
    auto gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  }

 private:
  at::Generator gen_;
  torch::Tensor saved_;
};

struct RerunState : torch::CustomClassHolder {
  std::shared_ptr<Shards> shards;
  std::vector<Shard>* block = nullptr;
  const std::function<torch::Tensor(const torch::Tensor&)>* run = nullptr;  // during the forward only
  std::function<torch::Tensor(const torch::Tensor&)> rerun;
  std::vector<torch::Tensor> params;  // the block's trainable LoRA tensors
  torch::Tensor rng_state;
  bool input_requires_grad = false;
};

// A block that autograd sees as one node: forward under no-grad keeping only the block's input; backward
// gathers the weights again, recomputes the block with grad and back-propagates through it. The gathered
// weights live in that inner graph only, which is freed before the backward returns.
class Recompute : public torch::autograd::Function<Recompute> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               at::TensorList /*params: edges to the LoRA tensors*/,
                               const c10::intrusive_ptr<RerunState>& st) {
    ctx->save_for_backward({x});
    ctx->saved_data["state"] = c10::IValue::make_capsule(st);
    st->rng_state = GeneratorState::now(x.device());
    Gathered gathered(*st->shards, *st->block);
    auto y = (*st->run)(x);
    st->run = nullptr;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto st = c10::static_intrusive_pointer_cast<RerunState>(ctx->saved_data["state"].toCapsule());
    const auto x = ctx->get_saved_variables()[0].detach().requires_grad_(st->input_requires_grad);
    std::vector<torch::Tensor> wrt = st->params;
    if (st->input_requires_grad) wrt.insert(wrt.begin(), x);
    torch::autograd::variable_list grads;
    {
      GeneratorState rng(x.device(), st->rng_state);
      Gathered gathered(*st->shards, *st->block);
      torch::AutoGradMode grad_mode(true);
      const auto y = st->rerun(x);
      grads = torch::autograd::grad({y}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                    /*allow_unused=*/true);
    }
    torch::autograd::variable_list out;
    out.push_back(st->input_requires_grad ? grads[0] : torch::Tensor());
    out.insert(out.end(), grads.begin() + (st->input_requires_grad ? 1 : 0), grads.end());
    out.emplace_back();  // the state
    return out;
  }
};

torch::Tensor run_block(const std::shared_ptr<Shards>& shards, const model::BlockCall& call,
                        const torch::Tensor& x) {
  auto* found = shards->block(call);
  if (!found) return call.run(x);  // replicated weights
  auto& block = *found;
  auto params = shards->trainable(call);
  const bool record =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() ||
       std::any_of(params.begin(), params.end(), [](const torch::Tensor& t) { return t.requires_grad(); }));
  if (!record) {  // nothing to differentiate: the weights go when the block is done
    Gathered gathered(*shards, block);
    return call.run(x);
  }
  CTM_CHECK(call.rerun,
            "sharded model: the attention backend of this forward cannot recompute a layer for the "
            "backward pass");
  auto st = c10::make_intrusive<RerunState>();
  st->shards = shards;
  st->block = &block;
  st->run = &call.run;
  st->rerun = call.rerun;
  st->params = params;
  st->input_requires_grad = x.requires_grad();
  return Recompute::apply(x, at::TensorList(params), st);
}

// This rank's rows of a stored tensor, zero-padded to the shard size.
torch::Tensor load_shard(const io::SafetensorsSet& weights, const std::string& name,
                         const torch::Tensor& like, const Comm& comm) {
  const auto& info = weights.info(name);
  const auto& file = weights.file_of(name);
  CTM_CHECK(info.shape == like.sizes().vec(), file.path(), ": tensor \"", name, "\": shape ",
            c10::IntArrayRef(info.shape), ", expected ", like.sizes());
  const RowShard rs = row_shard(like.size(0), comm.rank(), comm.size());
  auto sizes = like.sizes().vec();
  sizes[0] = rs.shard_rows;
  auto local = torch::zeros(sizes, like.options().device(torch::kCPU));
  if (rs.count > 0) {
    auto rows = local.narrow(0, 0, rs.count);
    model::copy_rows_from(file, info, rs.begin, rows);
  }
  return local;
}

std::vector<Shard>& block_of(Shards& s, const std::string& name) {
  const std::string layer_prefix = "model.layers.";
  if (name.rfind(layer_prefix, 0) == 0) return s.layers.at(std::stoul(name.substr(layer_prefix.size())));
  CTM_CHECK(name == "model.embed_tokens.weight", "sharded model: no block holds \"", name, "\"");
  return s.embedding;
}

// Weights every rank holds whole: the final norm ([hidden]) and the LM head, which runs once per chunk of
// positions (model::sequence_logprobs), a number that differs between ranks, so it cannot be a collective.
// A tied head is the embedding.
bool replicated(const std::string& name, const model::ModelConfig& config) {
  return name == "model.norm.weight" || name == "lm_head.weight" ||
         (config.tie_word_embeddings && name == "model.embed_tokens.weight");
}

}  // namespace

ShardedModel::ShardedModel(const std::string& dir, torch::Device device, torch::Dtype dtype,
                           std::shared_ptr<Comm> comm)
    : shards_(std::make_shared<Shards>()) {
  const auto config = model::ModelConfig::load(dir + "/config.json");
  io::SafetensorsSet weights(dir);
  model::check_parameter_count(config, weights, dir);
  model_ =
      std::make_shared<model::Transformer>(config, device, dtype, model::Transformer::Weights::kPlaceholders);
  model::check_weight_names(*model_, weights, dir);
  auto& s = *shards_;
  s.comm = std::move(comm);
  s.model = model_.get();
  s.layers.resize(static_cast<size_t>(config.num_layers));
  for (auto& [name, slot] : model_->named_parameter_slots()) {
    const auto opts = torch::dtype(dtype).device(device);
    s.stats.model_bytes += slot->numel() * static_cast<int64_t>(c10::elementSize(dtype));
    if (replicated(name, config)) {
      *slot = torch::empty(slot->sizes(), opts);
      model::copy_tensor_from(weights.file_of(name), weights.info(name), *slot);
      s.stats.resident_bytes += static_cast<int64_t>(slot->nbytes());
      continue;
    }
    Shard shard{slot, *slot, load_shard(weights, name, *slot, *s.comm).to(opts)};
    s.stats.resident_bytes += static_cast<int64_t>(shard.local.nbytes());
    block_of(s, name).push_back(std::move(shard));
  }
  std::vector<const std::vector<Shard>*> blocks = {&s.embedding};
  for (const auto& layer : s.layers) blocks.push_back(&layer);
  for (const auto* block : blocks) {
    int64_t bytes = 0;
    for (const auto& sh : *block) bytes += static_cast<int64_t>(sh.local.nbytes()) * s.comm->size();
    s.stats.largest_block_bytes = std::max(s.stats.largest_block_bytes, bytes);
  }
  model_->set_block_runner([shards = shards_](const model::BlockCall& call, const torch::Tensor& x) {
    return run_block(shards, call, x);
  });
}

ShardedModel::~ShardedModel() = default;

ShardStats ShardedModel::stats() const {
  return shards_->stats;
}

}  // namespace ctm::dist
