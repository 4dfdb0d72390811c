#include "ctm/model/row_decoder.hpp"

#include <cstring>
#include <functional>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/model/small_batch_linear.hpp"
#include "row_ops.hpp"

namespace ctm::model {
namespace {

// x += y, elementwise.
void add_into(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// fn(r0, r1) on ranges of rows across ctm's workers (the elementwise steps between the products).
void for_rows(int64_t R, const std::function<void(int64_t, int64_t)>& fn) {
  parallel_ranges(R, 16, fn);
}

const float* bias_of(const Linear& l) {
  return l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
}

}  // namespace

bool RowDecoder::applies(const Transformer& model) {
  if (!model.device().is_cpu() || model.dtype() != torch::kFloat32) return false;
  if (model.has_lora() && model.lora_enabled()) return false;
  if (model.has_block_runner()) return false;  // the runner decides how (and with which weights) blocks run
  return small_batch_applies(torch::zeros({1, 8}), torch::zeros({1, 8}));
}

RowDecoder::RowDecoder(Transformer& model, bool pack) : model_(model) {
  CTM_CHECK(
      applies(model),
      "RowDecoder: needs a float32 CPU model without an active LoRA adapter or block runner on an AVX2 CPU");
  int64_t bytes = 0;
  for (const auto& [name, t] : model.named_parameters()) bytes += t.numel() * 4;
  if (pack && bytes <= kPackLimitBytes && PackedLinear::supported()) pack_weights();
}

void RowDecoder::pack_weights() {
  const auto& c = model_.config();
  const int64_t D = c.hidden_size, Dh = c.head_dim, H = c.num_heads, K = c.num_kv_heads,
                F = c.intermediate_size;
  auto w = [](const Linear& l) { return l.weight.data_ptr<float>(); };
  for (const DecoderLayer& L : model_.layers()) {
    packed_.emplace_back(std::vector<const float*>{w(L.q_proj), w(L.k_proj), w(L.v_proj)},
                         std::vector<int64_t>{H * Dh, K * Dh, K * Dh}, D,
                         std::vector<const float*>{bias_of(L.q_proj), bias_of(L.k_proj), bias_of(L.v_proj)});
    packed_.emplace_back(w(L.o_proj), D, H * Dh, bias_of(L.o_proj));
    packed_.emplace_back(std::vector<const float*>{w(L.gate_proj), w(L.up_proj)}, std::vector<int64_t>{F, F},
                         D, std::vector<const float*>{bias_of(L.gate_proj), bias_of(L.up_proj)});
    packed_.emplace_back(w(L.down_proj), D, F, bias_of(L.down_proj));
  }
  const auto& head = model_.lm_head();
  packed_.emplace_back(head.data_ptr<float>(), head.size(0), D);
}

torch::Tensor RowDecoder::forward_hidden(const std::vector<int64_t>& ids,
                                         const std::vector<int64_t>& positions, AttentionBackend& attn) {
  const auto& c = model_.config();
  const int64_t R = static_cast<int64_t>(ids.size()), D = c.hidden_size, Dh = c.head_dim;
  CTM_CHECK(R > 0 && positions.size() == ids.size(), "RowDecoder: ", ids.size(), " ids and ",
            positions.size(), " positions");
  x_.resize(R * D);
  h_.resize(R * D);
  qkv_.resize(R * (c.num_heads + 2 * c.num_kv_heads) * Dh);
  tmp_.resize(R * D);
  gu_.resize(R * 2 * c.intermediate_size);
  act_.resize(R * c.intermediate_size);
  const float* embed = model_.embed_tokens().data_ptr<float>();
  for (int64_t r = 0; r < R; ++r) {
    CTM_CHECK(ids[r] >= 0 && ids[r] < c.vocab_size, "RowDecoder: token id ", ids[r],
              " outside the vocabulary");
    std::memcpy(x_.data() + r * D, embed + ids[r] * D, D * sizeof(float));
  }
  // Rotary cos/sin [R, head_dim], as the torch forward computes them.
  const auto [cos_t, sin_t] = model_.rope_cos_sin(torch::tensor(positions, torch::kInt64).view({1, R}));
  const auto cos = cos_t.contiguous(), sin = sin_t.contiguous();
  const float eps = static_cast<float>(c.rms_norm_eps);
  // Each step adds the previous one's output (tmp_) to the residual stream and normalises it.
  auto add_and_norm = [&](bool add, const float* norm, float* out) {
    for_rows(R, [&](int64_t r0, int64_t r1) {
      if (add) add_into(x_.data() + r0 * D, tmp_.data() + r0 * D, (r1 - r0) * D);
      detail::rms_norm_rows(x_.data() + r0 * D, r1 - r0, D, norm, eps, out + r0 * D);
    });
  };
  for (int64_t i = 0; i < c.num_layers; ++i) {
    if (model_.before_layer()) model_.before_layer()(i);
    add_and_norm(i > 0, model_.layers()[i].input_layernorm.data_ptr<float>(), h_.data());
    layer(i, R, cos.data_ptr<float>(), sin.data_ptr<float>(), attn);
  }
  auto hidden = torch::empty({R, D}, torch::kFloat32);
  add_and_norm(true, model_.final_norm().data_ptr<float>(), hidden.data_ptr<float>());
  return hidden;
}

// One layer on the rows x_, with h_ = input_layernorm(x_) on entry; on exit tmp_ holds the MLP's output,
// still to be added to x_.
void RowDecoder::layer(int64_t i, int64_t R, const float* cos, const float* sin, AttentionBackend& attn) {
  const auto& c = model_.config();
  const DecoderLayer& L = model_.layers()[i];
  const int64_t D = c.hidden_size, Dh = c.head_dim, H = c.num_heads, K = c.num_kv_heads,
                F = c.intermediate_size;
  const int64_t ldq = (H + 2 * K) * Dh;
  const float eps = static_cast<float>(c.rms_norm_eps);
  float *x = x_.data(), *h = h_.data(), *qkv = qkv_.data(), *tmp = tmp_.data();
  // Attention: q, k and v in one product, RoPE on q and k, the backend, o_proj and the residual.
  const LinearSegment qkv_segs[3] = {
      {L.q_proj.weight.data_ptr<float>(), H * Dh, bias_of(L.q_proj), 0},
      {L.k_proj.weight.data_ptr<float>(), K * Dh, bias_of(L.k_proj), H * Dh},
      {L.v_proj.weight.data_ptr<float>(), K * Dh, bias_of(L.v_proj), (H + K) * Dh}};
  if (packed())
    packed_[4 * i].apply(h, R, qkv, ldq);
  else
    small_batch_linear_segments(h, R, D, qkv_segs, 3, qkv, ldq);
  for_rows(R, [&](int64_t r0, int64_t r1) {
    detail::rope_rows(qkv + r0 * ldq, r1 - r0, H, Dh, ldq, cos + r0 * Dh, sin + r0 * Dh);
    detail::rope_rows(qkv + r0 * ldq + H * Dh, r1 - r0, K, Dh, ldq, cos + r0 * Dh, sin + r0 * Dh);
  });
  auto view = [&](int64_t offset, int64_t heads) {
    return torch::from_blob(qkv + offset, {R, heads, 1, Dh}, {ldq, Dh, Dh, 1}, torch::kFloat32);
  };
  const auto att = attn.attend(i, view(0, H), view(H * Dh, K), view((H + K) * Dh, K)).contiguous();
  if (packed())
    packed_[4 * i + 1].apply(att.data_ptr<float>(), R, tmp, D);
  else
    small_batch_linear(att.data_ptr<float>(), R, H * Dh, L.o_proj.weight.data_ptr<float>(), D,
                       bias_of(L.o_proj), tmp);
  const float* post = L.post_attention_layernorm.data_ptr<float>();
  for_rows(R, [&](int64_t r0, int64_t r1) {
    add_into(x + r0 * D, tmp + r0 * D, (r1 - r0) * D);
    detail::rms_norm_rows(x + r0 * D, r1 - r0, D, post, eps, h + r0 * D);
  });
  // MLP: gate and up in one product, SwiGLU, down and the residual.
  const LinearSegment gu_segs[2] = {{L.gate_proj.weight.data_ptr<float>(), F, bias_of(L.gate_proj), 0},
                                    {L.up_proj.weight.data_ptr<float>(), F, bias_of(L.up_proj), F}};
  if (packed())
    packed_[4 * i + 2].apply(h, R, gu_.data(), 2 * F);
  else
    small_batch_linear_segments(h, R, D, gu_segs, 2, gu_.data(), 2 * F);
  for_rows(R, [&](int64_t r0, int64_t r1) {
    detail::silu_mul_rows(gu_.data() + r0 * 2 * F, r1 - r0, F, act_.data() + r0 * F);
  });
  if (packed())
    packed_[4 * i + 3].apply(act_.data(), R, tmp, D);
  else
    small_batch_linear(act_.data(), R, F, L.down_proj.weight.data_ptr<float>(), D, bias_of(L.down_proj), tmp);
}

torch::Tensor RowDecoder::logits(const torch::Tensor& hidden_RD) const {
  const auto h = hidden_RD.contiguous();
  const int64_t R = h.size(0), D = h.size(1);
  const auto& head = model_.lm_head();
  auto out = torch::empty({R, head.size(0)}, torch::kFloat32);
  if (packed())
    packed_.back().apply(h.data_ptr<float>(), R, out.data_ptr<float>(), head.size(0));
  else
    small_batch_linear(h.data_ptr<float>(), R, D, head.data_ptr<float>(), head.size(0), nullptr,
                       out.data_ptr<float>());
  return out;
}

}  // namespace ctm::model
