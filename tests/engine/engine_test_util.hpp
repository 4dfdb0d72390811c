// The fixture model and tokenizer shared by the engine tests (random weights, 256-byte BPE tokenizer).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ctm/engine/engine.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::engine::test {

inline std::string tiny_model_dir() {
  return std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";
}

struct TinyModel {
  std::shared_ptr<model::Transformer> model =
      model::load_model(tiny_model_dir(), torch::kCPU, torch::kFloat32);
  text::Tokenizer tokenizer = text::Tokenizer::load(tiny_model_dir());
};

inline TinyModel& tiny() {
  static TinyModel m;
  return m;
}

// A request without its prompt: n samples at temperature t, top_p 0.9, every sample max_new tokens long.
inline Request sampling_request(int64_t id, int64_t n, double t, int64_t max_new) {
  Request r;
  r.id = id;
  r.params.n = n;
  r.params.temperature = t;
  r.params.top_p = 0.9;
  r.params.max_new_tokens = max_new;
  r.params.ignore_eos = true;
  return r;
}

// Dense reference: q [H, D] over keys/values [K, T, D], query head h reads kv head h / (H / K).
inline torch::Tensor dense_attention(const torch::Tensor& q_HD, const torch::Tensor& k_KTD,
                                     const torch::Tensor& v_KTD) {
  const int64_t H = q_HD.size(0), K = k_KTD.size(0), D = q_HD.size(1);
  std::vector<torch::Tensor> rows;
  for (int64_t h = 0; h < H; ++h) {
    const auto k = k_KTD[h / (H / K)].to(torch::kFloat64), v = v_KTD[h / (H / K)].to(torch::kFloat64);
    const auto scores = torch::mv(k, q_HD[h].to(torch::kFloat64)) / std::sqrt(static_cast<double>(D));
    rows.push_back(torch::mv(v.t(), torch::softmax(scores, 0)));
  }
  return torch::stack(rows);
}

}  // namespace ctm::engine::test
