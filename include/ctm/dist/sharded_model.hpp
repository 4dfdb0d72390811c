// FSDP-style sharding of a frozen base model for LoRA training (DESIGN §4, docs/distributed.md).
//
// Rank r of R keeps rows [r s, (r + 1) s) of every base weight, s = ceil(rows / R) (the last shards padded
// with zeros), read as that row range from the safetensors files: no rank ever holds a whole tensor it did
// not gather. The Transformer's base weights are placeholders that hold no memory; a block runner all-gathers
// a block's weights (the embedding, one decoder layer) just before the block runs and drops them after. With
// autograd recording, a layer runs under no-grad keeping only its input, and its backward gathers the weights
// again, recomputes the layer with grad and back-propagates through it, so no gathered weight outlives its
// block. LoRA adapters (and so their optimiser state) are ordinary replicated tensors: the trainer
// all-reduces their gradients as in plain data parallelism. Replicated too: the final norm ([hidden]) and the
// LM head (with a tied head, the embedding), because callers run the head once per chunk of positions
// (model::sequence_logprobs), a count that differs between ranks and so cannot be a collective; it also
// spares a gather of the largest matrix per chunk, forward and backward.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "ctm/dist/comm.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::dist {

// Rows [begin, begin + count) of a tensor of `rows` rows, as rank `rank` of `ranks` holds them in a shard of
// shard_rows rows (count < shard_rows: zero padding; count may be 0).
struct RowShard {
  int64_t shard_rows = 0, begin = 0, count = 0;
};
RowShard row_shard(int64_t rows, int rank, int ranks);

// --fsdp: "on", "off", or "" / "auto" = on with more than one rank. ctm::UsageError for anything else.
bool fsdp_enabled(const std::string& value, const Comm& comm);

struct ShardStats {
  int64_t model_bytes = 0;          // every base weight, unsharded
  int64_t resident_bytes = 0;       // held by this rank between blocks: its shards (with padding) + the
                                    // replicated weights (final norm, LM head)
  int64_t largest_block_bytes = 0;  // the largest block as gathered (with padding)
  int64_t peak_gathered_bytes = 0;  // measured: the most bytes of gathered weights alive at one time
  int64_t gathers = 0;              // blocks gathered so far
};

class ShardedModel {
 public:
  // Loads the Hugging Face folder `dir` with this rank keeping its shard of every base weight. `comm` moves
  // tensors on `device` (device_comm()); every rank of it must construct the model. Errors as load_model.
  ShardedModel(const std::string& dir, torch::Device device, torch::Dtype dtype, std::shared_ptr<Comm> comm);
  ~ShardedModel();
  ShardedModel(const ShardedModel&) = delete;
  ShardedModel& operator=(const ShardedModel&) = delete;

  // Runs like a loaded model (forward, logits, LoRA): every call is collective, so all ranks must run the
  // same number of forwards and backwards. Base weights cannot be trained, saved or merged.
  const std::shared_ptr<model::Transformer>& model() const { return model_; }
  ShardStats stats() const;

  struct Shards;  // the state the block runner shares

 private:
  std::shared_ptr<model::Transformer> model_;
  std::shared_ptr<Shards> shards_;
};

}  // namespace ctm::dist
