#include "ctm/engine/batch_sampler.hpp"

#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/engine/sampler.hpp"

namespace ctm::engine {
namespace {

torch::Tensor column(const std::vector<double>& values, torch::Device device) {
  return torch::tensor(values, torch::kFloat64).view({-1, 1}).to(device);
}

// Which tokens of each row are in its nucleus (bool [S, V]): with top_p < 1, the smallest prefix of the
// descending order (stable: ties keep the lower id first) whose mass reaches top_p of the total.
torch::Tensor nucleus(const torch::Tensor& logits, const torch::Tensor& weights, const torch::Tensor& top_p,
                      bool any_cut) {
  const auto positive = weights > 0;
  if (!any_cut) return positive;
  // The weights fall with the logits, so sorting the float32 logits gives their order at half the cost.
  const auto order = std::get<1>(torch::sort(logits, /*stable=*/true, /*dim=*/1, /*descending=*/true));
  const auto sorted = weights.gather(1, order);
  const auto total = weights.sum(1, /*keepdim=*/true);
  const auto before = sorted.cumsum(1) - sorted;  // the mass ranking before each token (exact at rank 0)
  const auto keep_sorted = before < top_p * total;
  return torch::zeros_like(positive).scatter(1, order, keep_sorted).logical_and(positive);
}

}  // namespace

std::vector<int32_t> sample_tokens(const torch::Tensor& logits_SV, const BatchDraw& draw) {
  const int64_t S = logits_SV.size(0), V = logits_SV.size(1);
  CTM_CHECK(static_cast<int64_t>(draw.temperature.size()) == S &&
                static_cast<int64_t>(draw.top_p.size()) == S && static_cast<int64_t>(draw.u.size()) == S,
            "sample_tokens: ", S, " rows but ", draw.temperature.size(), " temperatures, ", draw.top_p.size(),
            " top_p and ", draw.u.size(), " uniforms");
  const auto device = logits_SV.device();
  const auto logits = logits_SV.to(torch::kFloat32).contiguous();
  std::vector<double> inv_t(S), greedy(S);
  bool any_cut = false;
  for (int64_t s = 0; s < S; ++s) {
    greedy[s] = draw.temperature[s] < kGreedyTemperature;
    inv_t[s] = greedy[s] ? 1.0 : 1.0 / draw.temperature[s];
    any_cut = any_cut || (!greedy[s] && draw.top_p[s] < 1.0);
    CTM_CHECK(greedy[s] || (draw.u[s] >= 0 && draw.u[s] < 1), "sample_tokens: uniform draw ", draw.u[s],
              " of row ", s, " outside [0, 1)");
  }
  const auto to_host = [S](const torch::Tensor& ids) {
    const auto host = ids.to(torch::kCPU, torch::kInt32).contiguous();
    return std::vector<int32_t>(host.data_ptr<int32_t>(), host.data_ptr<int32_t>() + S);
  };
  if (std::all_of(greedy.begin(), greedy.end(), [](double g) { return g > 0; }))
    return to_host(logits.argmax(1));  // greedy decoding (evaluation): no weights at all
  // As sample_token: weights exp((logit - max) / T) in float64, then the nucleus, then the inverse CDF.
  const auto l64 = logits.to(torch::kFloat64);
  const auto weights = ((l64 - l64.amax(1, /*keepdim=*/true)) * column(inv_t, device)).exp_();
  const auto kept = nucleus(logits, weights, column(draw.top_p, device), any_cut);
  const auto masked = weights * kept;
  const auto cum = masked.cumsum(1);
  const auto target = column(draw.u, device) * masked.sum(1, /*keepdim=*/true);
  auto drawn = torch::searchsorted(cum, target, /*out_int32=*/false, /*right=*/true).view({S});
  // u close to 1 may pass the total by rounding: the last token of the nucleus, as sample_token.
  const auto ids = torch::arange(V, torch::dtype(torch::kInt64).device(device)).expand({S, V});
  drawn = torch::minimum(drawn, torch::where(kept, ids, torch::full_like(ids, -1)).amax(1));
  return to_host(torch::where(column(greedy, device).view({S}) > 0, logits.argmax(1), drawn));
}

}  // namespace ctm::engine
