// The small-batch CPU kernel against torch::linear in float64, and the properties decode relies on: a row's
// result does not depend on the other rows or on the number of workers (bitwise), and apply_linear() falls
// back to torch where the kernel does not apply (autograd, other dtypes, many rows).
#include "ctm/model/small_batch_linear.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ctm/core/worker_pool.hpp"

namespace ctm::model {
namespace {

class SmallBatchLinear : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!small_batch_applies(torch::zeros({1, 8}), torch::zeros({1, 8})))
      GTEST_SKIP() << "this CPU has no AVX2+FMA";
  }
  void TearDown() override { set_cpu_workers(1); }
};

double relative_error(const torch::Tensor& got, const torch::Tensor& ref) {
  return (got.to(torch::kFloat64) - ref).norm().item<double>() / ref.norm().item<double>();
}

TEST_F(SmallBatchLinear, MatchesFloat64Reference) {
  torch::manual_seed(1);
  for (int workers : {1, 2, 3}) {
    set_cpu_workers(workers);
    for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 13, 64, 96})
      for (int64_t K : {3, 8, 21, 64, 776})
        for (int64_t N : {1, 2, 3, 4, 5, 7, 100, 1001})
          for (bool with_bias : {false, true}) {
            const auto x = torch::randn({M, K}), w = torch::randn({N, K});
            const auto b = with_bias ? torch::randn({N}) : torch::Tensor();
            ASSERT_TRUE(small_batch_applies(x, w));
            const auto ref = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64),
                                           with_bias ? b.to(torch::kFloat64) : torch::Tensor());
            for (auto* kernel : {&small_batch_linear, &small_batch_linear_avx2}) {
              auto y = torch::full({M, N}, std::nanf(""));  // every output must be written
              kernel(x.data_ptr<float>(), M, K, w.data_ptr<float>(), N,
                     with_bias ? b.data_ptr<float>() : nullptr, y.data_ptr<float>());
              ASSERT_FALSE(y.isnan().any().item<bool>()) << M << "x" << K << "x" << N;
              EXPECT_LT(relative_error(y, ref), 1e-5) << M << "x" << K << "x" << N << " bias " << with_bias;
            }
          }
  }
}

TEST_F(SmallBatchLinear, RowsAreIndependentOfBatchAndWorkers) {
  torch::manual_seed(2);
  const int64_t K = 768, N = 2048;
  const auto x = torch::randn({64, K}), w = torch::randn({N, K});
  set_cpu_workers(1);
  const auto one = apply_linear(x, w);
  for (int workers : {2, 3}) {
    set_cpu_workers(workers);
    EXPECT_TRUE(torch::equal(apply_linear(x, w), one)) << workers << " workers";
  }
  for (int64_t row : {0, 5, 63}) {
    EXPECT_TRUE(torch::equal(apply_linear(x.narrow(0, row, 1), w), one.narrow(0, row, 1))) << "row " << row;
    EXPECT_TRUE(torch::equal(apply_linear(x.narrow(0, row, 1).expand({7, K}).contiguous(), w)[3], one[row]))
        << "row " << row << " in a batch of 7";
  }
}

TEST_F(SmallBatchLinear, KeepsLeadingDimensions) {
  const auto x = torch::randn({4, 1, 64}), w = torch::randn({10, 64}), b = torch::randn({10});
  const auto y = apply_linear(x, w, b);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 1, 10}));
  EXPECT_LT(
      relative_error(y, torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64))),
      1e-6);
}

TEST_F(SmallBatchLinear, FallsBackWhereItDoesNotApply) {
  const auto w = torch::randn({16, 64});
  EXPECT_FALSE(small_batch_applies(torch::randn({kSmallBatchMaxRows + 1, 64}), w));  // many rows: OpenBLAS
  EXPECT_FALSE(small_batch_applies(torch::randn({4, 64}, torch::kFloat64), w.to(torch::kFloat64)));
  // Autograd needs a torch op: the gradient must reach the weight.
  const auto wg = w.clone().requires_grad_(true);
  EXPECT_FALSE(small_batch_applies(torch::randn({4, 64}), wg));
  apply_linear(torch::randn({4, 64}), wg).sum().backward();
  ASSERT_TRUE(wg.grad().defined());
  EXPECT_GT(wg.grad().abs().sum().item<double>(), 0);
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(small_batch_applies(torch::randn({4, 64}), wg));
  }
}

}  // namespace
}  // namespace ctm::model
