// Batches for training: which examples go together (grouped by length so padding is small) and how token
// sequences become padded tensors with a loss mask.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ctm::train {

// The micro-batches of one epoch, as example indices. The examples are shuffled with
// Rng(mix_seed(seed, epoch, 0)), cut into mega-batches of `megabatch` micro-batches, each mega-batch sorted
// by length (longest first) and cut into micro-batches of `batch_size`, and the micro-batches shuffled again:
// similar lengths share a batch and the order is still random. A pure function of its arguments, so a resumed
// run rebuilds the same order. megabatch = 1 is a plain shuffle.
std::vector<std::vector<int64_t>> length_grouped_batches(const std::vector<int64_t>& lengths,
                                                         int64_t batch_size, int64_t megabatch, uint64_t seed,
                                                         int64_t epoch);

// Micro-batches for evaluation: all examples, sorted by length (longest first), in order.
std::vector<std::vector<int64_t>> sorted_batches(const std::vector<int64_t>& lengths, int64_t batch_size);

// A token sequence and which of its tokens are predicted (in the loss): is_target[t] = 1 means the model is
// trained to produce tokens[t] from tokens[0..t).
struct LmExample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> is_target;
};

constexpr int64_t kIgnoreIndex =
    -100;  // label of a position that is not in the loss (Hugging Face convention)

// A right-padded batch. Right padding needs no key mask under a causal mask: a real token never sees a pad.
struct LmBatch {
  torch::Tensor ids_BT;        // int64 [B, T], pads = pad_id
  torch::Tensor positions_BT;  // int64 [B, T], 0..T-1
  torch::Tensor targets_BT;    // int64 [B, T]: the token that position t must predict (tokens[t+1]) or -100
  std::vector<int64_t> lengths;
  int64_t num_targets = 0;  // positions whose target is not -100
};

LmBatch collate_lm(const std::vector<const LmExample*>& examples, int32_t pad_id);

// The summed negative log-likelihood of targets_N under logits_NV (rows whose target is -100 are skipped),
// computed in float32 or better. Returns a 0-dim tensor with autograd.
torch::Tensor summed_nll(const torch::Tensor& logits_NV, const torch::Tensor& targets_N);

}  // namespace ctm::train
