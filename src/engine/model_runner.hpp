// The forward side of the engine (private to it): prefill and decode steps of the model through the KV cache,
// returning float32 logits (a prompt's on the CPU, a decode step's on the model's device). No scheduling, no
// sampling.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "ctm/engine/prefix_cache.hpp"
#include "ctm/model/row_decoder.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::engine {

class ModelRunner {
 public:
  explicit ModelRunner(model::Transformer& model);

  // Runs ids[0 .. count) at positions start, start+1, ... after the first `start` tokens of `blocks` (which
  // must have room for start + count) and returns the logits [count - first_logit, V] of rows first_logit ..
  // count-1 (undefined when first_logit >= count). On the CPU in float32 the prompt runs in chunks of rows
  // through kernels whose per-row results do not depend on the other rows, so a row's keys, values and logits
  // are the same bits whatever start, count and the chunking.
  torch::Tensor extend(SharedPrefixCache& cache, const BlockList& blocks, int64_t start, const int32_t* ids,
                       int64_t count, int64_t first_logit);

  // One decode step: slot i feeds token ids[i] at position positions[i]. Returns the logits [S, V] on the
  // model's device (a GPU's stay there for the batched sampler).
  torch::Tensor decode(SharedPrefixCache& cache, std::vector<SharedPrefixCache::Slot> slots,
                       const std::vector<int64_t>& ids, const std::vector<int64_t>& positions);

 private:
  // Hidden states [R, D] of rows (token, position): the row decoder, or the model's torch forward.
  torch::Tensor hidden(const std::vector<int64_t>& ids, const std::vector<int64_t>& positions,
                       SharedPrefixCache& cache, bool one_sequence);
  torch::Tensor logits(const torch::Tensor& hidden_RD, bool on_host);

  model::Transformer& model_;
  std::unique_ptr<model::RowDecoder> rows_;  // CPU float32: ctm's kernels, no torch op per layer
  int64_t chunk_;                            // most prompt tokens per forward
};

}  // namespace ctm::engine
