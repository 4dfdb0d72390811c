// One decode step's draws for the whole batch on the logits' device: on a GPU only the chosen ids come back
// to the host (not [S, vocab] floats). Row s follows sample_token's rule exactly (float64 weights, the
// nucleus of the descending order with ties to the lower id, inverse CDF in id order with the sample's own
// uniform u[s]), so a row and sample_token agree unless rounding puts u on a boundary between two tokens.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ctm::engine {

struct BatchDraw {
  std::vector<double> temperature, top_p, u;  // per row; u is ignored for greedy rows
};

// logits_SV: float32 [S, V] on any device. Returns S token ids.
std::vector<int32_t> sample_tokens(const torch::Tensor& logits_SV, const BatchDraw& draw);

}  // namespace ctm::engine
