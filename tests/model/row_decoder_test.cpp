// The row decoder (ctm's kernels, no torch op per layer) against the model's torch forward, and the
// properties the engine relies on: a row's result does not depend on the other rows, on how a sequence is
// split into calls, or on the worker count (bitwise); and the packed-panel products against float64.
#include "ctm/model/row_decoder.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/packed_linear.hpp"
#include "ctm/model/small_batch_linear.hpp"
#include "model_test_util.hpp"

namespace ctm::model {
namespace {

// One causal sequence fed as rows ([R, H, 1, D]: row r is the next token), keys kept across calls; each row
// attends on its own (the same call for the same row however the sequence is split).
class SequenceAttention : public AttentionBackend {
 public:
  torch::Tensor attend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                       const torch::Tensor& v) override {
    if (static_cast<int64_t>(k_.size()) <= layer) k_.resize(layer + 1), v_.resize(layer + 1);
    const auto k1 = k.select(2, 0).transpose(0, 1).unsqueeze(0),
               v1 = v.select(2, 0).transpose(0, 1).unsqueeze(0);
    const int64_t before = k_[layer].defined() ? k_[layer].size(2) : 0, R = q.size(0);
    k_[layer] = before ? torch::cat({k_[layer], k1}, 2) : k1.clone();
    v_[layer] = before ? torch::cat({v_[layer], v1}, 2) : v1.clone();
    std::vector<torch::Tensor> rows;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t S = before + r + 1;
      rows.push_back(grouped_attention(q.narrow(0, r, 1), k_[layer].narrow(2, 0, S),
                                       v_[layer].narrow(2, 0, S), {},
                                       /*causal=*/false));  // [1, H, 1, D]
    }
    return torch::cat(rows, 0);
  }

 private:
  std::vector<torch::Tensor> k_, v_;
};

std::vector<int64_t> some_ids(int64_t n, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

// Logits of a sequence through the row decoder, fed in calls of `chunk` rows.
torch::Tensor row_logits(RowDecoder& dec, const std::vector<int64_t>& ids, int64_t chunk) {
  SequenceAttention attn;
  std::vector<torch::Tensor> out;
  for (size_t c0 = 0; c0 < ids.size(); c0 += chunk) {
    const size_t c1 = std::min(ids.size(), c0 + chunk);
    std::vector<int64_t> part(ids.begin() + c0, ids.begin() + c1), pos;
    for (size_t i = c0; i < c1; ++i) pos.push_back(static_cast<int64_t>(i));
    out.push_back(dec.logits(dec.forward_hidden(part, pos, attn)));
  }
  return torch::cat(out, 0);
}

torch::Tensor torch_logits(Transformer& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  CausalAttention attn;
  return m.forward(torch::tensor(ids).view({1, T}), torch::arange(T).view({1, T}), attn)[0];
}

class RowDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PackedLinear::supported()) GTEST_SKIP() << "this CPU has no AVX2+FMA";
  }
  void TearDown() override { set_cpu_workers(1); }
};

TEST_F(RowDecoderTest, MatchesTheTorchForward) {
  // The fixture (grouped-query attention, no biases) and a random Qwen2-style model (q/k/v biases, tied
  // head).
  auto fixture = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  ModelConfig qwen = fixture->config();
  qwen.attention_bias = true;
  qwen.tie_word_embeddings = true;
  qwen.num_kv_heads = 1;
  auto biased = init_model(qwen, 3, torch::kCPU, torch::kFloat32);
  for (Transformer* m : {fixture.get(), biased.get()}) {
    ASSERT_TRUE(RowDecoder::applies(*m));
    const auto ids = some_ids(40, m->config().vocab_size);
    const auto want = torch_logits(*m, ids);
    for (bool pack : {true, false}) {
      RowDecoder dec(*m, pack);
      EXPECT_EQ(dec.packed(), pack);
      const auto got = row_logits(dec, ids, 16);
      const double err = test::max_abs_diff(got, want), scale = want.abs().max().item<double>();
      EXPECT_LT(err, 1e-5 * std::max(1.0, scale)) << "packed " << pack << ": max abs error " << err;
    }
  }
}

TEST_F(RowDecoderTest, RowsDoNotDependOnTheCallsOrTheWorkers) {
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  const auto ids = some_ids(50, m->config().vocab_size);
  for (bool pack : {true, false}) {
    RowDecoder dec(*m, pack);
    set_cpu_workers(1);
    const auto whole = row_logits(dec, ids, 50);
    EXPECT_TRUE(torch::equal(row_logits(dec, ids, 1), whole)) << "one row a call, packed " << pack;
    EXPECT_TRUE(torch::equal(row_logits(dec, ids, 7), whole)) << "7 rows a call, packed " << pack;
    set_cpu_workers(3);
    EXPECT_TRUE(torch::equal(row_logits(dec, ids, 13), whole)) << "3 workers, packed " << pack;
  }
}

TEST_F(RowDecoderTest, DoesNotApplyToLoraOrOtherDtypes) {
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat64);
  EXPECT_FALSE(RowDecoder::applies(*m));
  EXPECT_THROW(RowDecoder{*m}, Error);
}

TEST_F(RowDecoderTest, DoesNotApplyWithABlockRunner) {
  // A block runner may put the weights in place per block (a sharded model): the row decoder, which reads
  // them directly, must not take such a model.
  auto m = load_model(test::tiny_random_dir(), torch::kCPU, torch::kFloat32);
  ASSERT_TRUE(RowDecoder::applies(*m));
  m->set_block_runner([](const BlockCall& call, const torch::Tensor& x) { return call.run(x); });
  EXPECT_FALSE(RowDecoder::applies(*m));
  EXPECT_THROW(RowDecoder{*m}, Error);
  m->set_block_runner({});
  EXPECT_TRUE(RowDecoder::applies(*m));
}

TEST_F(RowDecoderTest, PackedLinearMatchesFloat64AndIsRowIndependent) {
  torch::manual_seed(4);
  for (int workers : {1, 3}) {
    set_cpu_workers(workers);
    for (int64_t M : {1, 5, 6, 7, 64})
      for (int64_t K : {3, 64, 256})
        for (int64_t N : {1, 24, 65, 300}) {
          const auto x = torch::randn({M, K}), w = torch::randn({N, K}), b = torch::randn({N});
          const auto ref = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64));
          const PackedLinear p(w.data_ptr<float>(), N, K, b.data_ptr<float>());
          auto y = torch::full({M, N + 3}, std::nanf(""));  // a wider output: columns past N stay untouched
          p.apply(x.data_ptr<float>(), M, y.data_ptr<float>(), N + 3);
          const auto yn = y.narrow(1, 0, N);
          const double rel = (yn.to(torch::kFloat64) - ref).norm().item<double>() / ref.norm().item<double>();
          EXPECT_LT(rel, 1e-5) << M << "x" << K << "x" << N;
          EXPECT_TRUE(y.narrow(1, N, 3).isnan().all().item<bool>());
          for (int64_t r : {int64_t{0}, M - 1}) {
            auto one = torch::empty({1, N});
            p.apply(x[r].data_ptr<float>(), 1, one.data_ptr<float>(), N);
            EXPECT_TRUE(torch::equal(one[0], yn[r]))
                << "row " << r << " alone, " << M << "x" << K << "x" << N;
          }
        }
  }
}

TEST_F(RowDecoderTest, StackedAndSegmentedProductsEqualSeparateOnes) {
  torch::manual_seed(5);
  const int64_t M = 9, K = 40;
  const auto x = torch::randn({M, K}), w1 = torch::randn({20, K}), w2 = torch::randn({7, K}),
             b2 = torch::randn({7});
  const PackedLinear stacked({w1.data_ptr<float>(), w2.data_ptr<float>()}, {20, 7}, K,
                             {nullptr, b2.data_ptr<float>()});
  auto y = torch::empty({M, 27});
  stacked.apply(x.data_ptr<float>(), M, y.data_ptr<float>(), 27);
  auto y1 = torch::empty({M, 20}), y2 = torch::empty({M, 7});
  PackedLinear(w1.data_ptr<float>(), 20, K).apply(x.data_ptr<float>(), M, y1.data_ptr<float>(), 20);
  PackedLinear(w2.data_ptr<float>(), 7, K, b2.data_ptr<float>())
      .apply(x.data_ptr<float>(), M, y2.data_ptr<float>(), 7);
  EXPECT_TRUE(torch::equal(y, torch::cat({y1, y2}, 1)));
  // The small-batch kernel's segments: the same bits as separate products.
  const LinearSegment segs[2] = {{w1.data_ptr<float>(), 20, nullptr, 0},
                                 {w2.data_ptr<float>(), 7, b2.data_ptr<float>(), 20}};
  auto s = torch::empty({M, 30});
  small_batch_linear_segments(x.data_ptr<float>(), M, K, segs, 2, s.data_ptr<float>(), 30);
  small_batch_linear(x.data_ptr<float>(), M, K, w1.data_ptr<float>(), 20, nullptr, y1.data_ptr<float>());
  small_batch_linear(x.data_ptr<float>(), M, K, w2.data_ptr<float>(), 7, b2.data_ptr<float>(),
                     y2.data_ptr<float>());
  EXPECT_TRUE(torch::equal(s.narrow(1, 0, 27), torch::cat({y1, y2}, 1)));
}

}  // namespace
}  // namespace ctm::model
