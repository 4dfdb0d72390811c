// Log-probabilities of given tokens: the `logprobs` task, contrastive-estimation scores and the DPO losses
// all need log p(token_t | tokens_<t) over a right-padded batch.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ctm/model/transformer.hpp"

namespace ctm::model {

// A right-padded batch: ids_BT int64 [B, T] (pad with any valid id), lengths_B the real lengths, positions
// 0..T-1.
struct PaddedBatch {
  torch::Tensor ids_BT;
  torch::Tensor lengths_B;  // int64 [B]
  torch::Tensor valid_BT;   // bool [B, T]
  torch::Tensor positions_BT;
};
PaddedBatch pad_batch(const std::vector<std::vector<int64_t>>& seqs, torch::Device device,
                      int64_t pad_id = 0);

// log_softmax(logits_BTV)[b, t, target_BT[b, t]], in float32 (float64 for float64 logits).
torch::Tensor gather_logprobs(const torch::Tensor& logits_BTV, const torch::Tensor& target_BT);

// For a right-padded batch: [B, T-1] float32, entry t = log p(ids[b, t+1] | ids[b, 0..t]); entries at or
// beyond length_b - 1 are 0. Differentiable (LoRA/DPO training); wrap in NoGradGuard for scoring. The LM head
// runs on chunks of `chunk` positions so a large vocabulary never needs [B, T, V] float32 logits at once when
// no gradient is taken.
torch::Tensor sequence_logprobs(Transformer& model, const PaddedBatch& batch, int64_t chunk = 256);

}  // namespace ctm::model
