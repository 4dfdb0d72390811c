// What the sharded-model tests share (tests/dist with one rank, tests/mpi with several): the models, LoRA
// adapters with nonzero A and B, random LM examples, a loss + backward over some of them, and the comparison
// of LoRA gradients with a reference.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/dist/device.hpp"
#include "ctm/dist/sharded_model.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/train/batching.hpp"
#include "ctm/train/lm.hpp"

namespace ctm::dist::test {

inline std::string llama_fixture() {
  return std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";
}
inline std::string tiny_model() {
  return std::string(CTM_SOURCE_DIR) + "/data/models/tiny";
}

// LoRA (r 4) on every projection: A as add_lora draws it, B from seeded normals instead of zeros, so both get
// nonzero gradients.
inline void add_test_lora(model::Transformer& m, double dropout = 0.0) {
  model::LoraConfig cfg;
  cfg.r = 4;
  cfg.alpha = 8;
  cfg.dropout = dropout;
  cfg.target_modules = model::projection_names();
  model::add_lora(m, cfg, 7);
  torch::NoGradGuard no_grad;
  uint64_t k = 0;
  for (auto& [name, t] : m.named_lora_parameters()) {
    if (name.find("lora_B") == std::string::npos) continue;
    auto gen = at::detail::createCPUGenerator(mix_seed(11, k++, 0));
    auto values = torch::empty(t.sizes(), torch::kFloat32);
    values.normal_(0.0, 0.05, gen);
    t.copy_(values);
  }
}

// n sequences of 5..16 random tokens; the second half of each is in the loss.
inline std::vector<train::LmExample> random_examples(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<train::LmExample> out;
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(mix_seed(seed, static_cast<uint64_t>(i), 0));
    train::LmExample ex;
    const int64_t len = 5 + static_cast<int64_t>(rng.below(12));
    for (int64_t t = 0; t < len; ++t) {
      ex.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab))));
      ex.is_target.push_back(t >= len / 2 ? 1 : 0);
    }
    out.push_back(std::move(ex));
  }
  return out;
}

// The summed LM loss of examples[ids] (one right-padded batch), back-propagated.
inline double loss_backward(model::Transformer& m, const std::vector<train::LmExample>& examples,
                            const std::vector<int64_t>& ids) {
  std::vector<const train::LmExample*> batch;
  for (auto i : ids) batch.push_back(&examples.at(static_cast<size_t>(i)));
  auto terms = train::causal_lm_loss(m, train::collate_lm(batch, 0));
  terms.sum.backward();
  return terms.sum.item<double>();
}

struct GradDiff {
  double max_abs = 0.0;  // max |g - g_ref| over every LoRA element
  double max_ref = 0.0;  // max |g_ref|
  double max_rel = 0.0;  // max over tensors of max|g - g_ref| / max|g_ref|
};

// LoRA gradients of `m` against those of `ref` (same adapters, same names).
inline GradDiff compare_lora_grads(const model::Transformer& m, const model::Transformer& ref) {
  const auto a = m.named_lora_parameters(), b = ref.named_lora_parameters();
  EXPECT_EQ(a.size(), b.size());
  GradDiff d;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    const auto& g = a[i].second.grad();
    const auto& g_ref = b[i].second.grad();
    if (!g.defined() || !g_ref.defined()) {
      ADD_FAILURE() << "no gradient for " << a[i].first;
      continue;
    }
    const double err = (g - g_ref).abs().max().item<double>(), scale = g_ref.abs().max().item<double>();
    EXPECT_GT(scale, 0.0) << a[i].first << " has a zero reference gradient";
    d.max_abs = std::max(d.max_abs, err);
    d.max_ref = std::max(d.max_ref, scale);
    d.max_rel = std::max(d.max_rel, scale > 0 ? err / scale : err);
  }
  return d;
}

// A Qwen2-shaped random model with q/k/v biases and a tied head, written to dir (by rank 0 of comm).
inline void write_tied_qwen2(const std::string& dir, Comm& comm) {
  if (comm.rank() == 0) {
    model::ModelConfig c;
    c.family = model::Family::Qwen2;
    c.hidden_size = 48;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 12;
    c.intermediate_size = 100;
    c.vocab_size = 131;  // no multiple of 2 or 3: the shards are padded
    c.tie_word_embeddings = true;
    c.attention_bias = true;
    model::save_model(*model::init_model(c, 5, torch::kCPU, torch::kFloat32), dir);
  }
  comm.barrier();
}

struct ShardedCheck {
  GradDiff grads;
  double loss = 0.0, ref_loss = 0.0;
  ShardStats stats;
};

// The LoRA gradients of the model in dir sharded over comm (rank r back-propagates examples r, r + R, ...;
// the gradients are then all-reduced) against the unsharded model on the whole batch, computed on every rank.
inline ShardedCheck sharded_vs_unsharded(const std::string& dir, Comm& comm, int64_t n_examples = 7) {
  ShardedCheck out;
  auto ref = model::load_model(dir, torch::kCPU, torch::kFloat32);
  add_test_lora(*ref);
  const auto examples = random_examples(n_examples, ref->config().vocab_size, 3);
  std::vector<int64_t> all, mine;
  for (int64_t i = 0; i < n_examples; ++i) {
    all.push_back(i);
    if (i % comm.size() == comm.rank()) mine.push_back(i);
  }
  out.ref_loss = loss_backward(*ref, examples, all);

  ShardedModel sharded(dir, torch::kCPU, torch::kFloat32, device_comm(comm, torch::kCPU));
  auto& m = *sharded.model();
  add_test_lora(m);
  auto loss = torch::tensor({loss_backward(m, examples, mine)}, torch::kFloat64);
  comm.allreduce_sum(loss);
  out.loss = loss.item<double>();
  for (auto& t : m.lora_parameters()) comm.allreduce_sum(t.mutable_grad());
  out.grads = compare_lora_grads(m, *ref);
  out.stats = sharded.stats();
  if (comm.rank() == 0)
    std::printf(
        "[sharded] %s on %d ranks: loss %.6f vs %.6f; LoRA grads max abs err %.3g (max |g| %.3g), max rel "
        "%.3g\n",
        dir.substr(dir.rfind('/') + 1).c_str(), comm.size(), out.loss, out.ref_loss, out.grads.max_abs,
        out.grads.max_ref, out.grads.max_rel);
  return out;
}

// What a sharded check must show: the same loss and LoRA gradients (float32 tolerance), and never more than
// one gathered block alive.
inline void expect_sharded_matches(const ShardedCheck& r) {
  EXPECT_NEAR(r.loss, r.ref_loss, 1e-5 * std::abs(r.ref_loss));
  EXPECT_LT(r.grads.max_rel, 2e-5);
  EXPECT_GT(r.stats.gathers, 0);
  EXPECT_EQ(r.stats.peak_gathered_bytes, r.stats.largest_block_bytes);
}

// With LoRA dropout on, each rank runs the whole batch sharded and unsharded from the same generator state:
// the recomputed layers must draw the forward's masks (equal gradients), and the generator must end where the
// unsharded run leaves it.
inline GradDiff dropout_recompute_check(const std::string& dir, Comm& comm) {
  auto ref = model::load_model(dir, torch::kCPU, torch::kFloat32);
  add_test_lora(*ref, 0.2);
  ref->set_training(true);
  const auto examples = random_examples(5, ref->config().vocab_size, 4);
  const std::vector<int64_t> all = {0, 1, 2, 3, 4};
  torch::manual_seed(99);
  loss_backward(*ref, examples, all);
  const double next_ref = torch::rand({1}).item<double>();

  ShardedModel sharded(dir, torch::kCPU, torch::kFloat32, device_comm(comm, torch::kCPU));
  auto& m = *sharded.model();
  add_test_lora(m, 0.2);
  m.set_training(true);
  torch::manual_seed(99);
  loss_backward(m, examples, all);
  EXPECT_EQ(torch::rand({1}).item<double>(), next_ref);
  const auto d = compare_lora_grads(m, *ref);
  if (comm.rank() == 0)
    std::printf(
        "[sharded] dropout 0.2 on %d ranks: LoRA grads max abs err %.3g (max |g| %.3g), max rel %.3g\n",
        comm.size(), d.max_abs, d.max_ref, d.max_rel);
  return d;
}

}  // namespace ctm::dist::test
