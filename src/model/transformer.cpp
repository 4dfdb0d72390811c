#include "ctm/model/transformer.hpp"

#include <cmath>

#include "ctm/core/error.hpp"
#include "ctm/model/small_batch_linear.hpp"

namespace ctm::model {

// ---- building blocks
// --------------------------------------------------------------------------------------------

torch::Tensor Linear::forward(const torch::Tensor& x, bool lora_enabled, bool training) const {
  auto y = apply_linear(x, weight, bias);
  if (lora && lora_enabled) y = y + lora_term(x, training).to(y.scalar_type());
  return y;
}

torch::Tensor Linear::lora_term(const torch::Tensor& x, bool training) const {
  auto xl = x.to(lora->A_rI.scalar_type());
  if (training && lora->dropout > 0) xl = torch::dropout(xl, lora->dropout, /*train=*/true);
  return torch::linear(torch::linear(xl, lora->A_rI), lora->B_Or) * lora->scaling;
}

namespace {

// Allocates one stacked weight (and bias) with `opts` for parts that hold only shapes (meta tensors), and
// makes their weights (and biases) views of it.
void stack_projections(const std::vector<Linear*>& parts, const torch::TensorOptions& opts,
                       torch::Tensor& weight, torch::Tensor& bias) {
  int64_t rows = 0;
  for (const Linear* p : parts) rows += p->weight.size(0);
  weight = torch::empty({rows, parts.front()->weight.size(1)}, opts);
  if (parts.front()->bias.defined()) bias = torch::empty({rows}, opts);
  int64_t row = 0;
  for (Linear* p : parts) {
    const int64_t n = p->weight.size(0);
    p->weight = weight.narrow(0, row, n);
    if (bias.defined()) p->bias = bias.narrow(0, row, n);
    row += n;
  }
}

// Whether the parts' weights (and biases) still tile the stacked tensors, in order.
bool tiles(const std::vector<const Linear*>& parts, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (!weight.defined()) return false;
  const auto* w = static_cast<const char*>(weight.data_ptr());
  const auto* b = bias.defined() ? static_cast<const char*>(bias.data_ptr()) : nullptr;
  int64_t row = 0;
  for (const Linear* p : parts) {
    if (!p->weight.is_contiguous() ||
        p->weight.data_ptr() != w + row * weight.stride(0) * weight.element_size())
      return false;
    if (p->bias.defined() != (b != nullptr) || (b && p->bias.data_ptr() != b + row * bias.element_size()))
      return false;
    row += p->weight.size(0);
  }
  return row == weight.size(0);
}

// The parts' outputs from one product with the stacked weight, each with its own LoRA term.
std::vector<torch::Tensor> stacked_forward(const std::vector<const Linear*>& parts,
                                           const torch::Tensor& weight, const torch::Tensor& bias,
                                           const torch::Tensor& x, bool lora, bool train) {
  const auto y = apply_linear(x, weight, bias);
  std::vector<torch::Tensor> out;
  int64_t col = 0;
  for (const Linear* p : parts) {
    const int64_t n = p->weight.size(0);
    auto part = y.narrow(-1, col, n);
    out.push_back(p->lora && lora ? part + p->lora_term(x, train).to(part.scalar_type()) : part);
    col += n;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& projection_names() {
  static const std::vector<std::string> names = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

const Linear* DecoderLayer::projection(const std::string& name) const {
  if (name == "q_proj") return &q_proj;
  if (name == "k_proj") return &k_proj;
  if (name == "v_proj") return &v_proj;
  if (name == "o_proj") return &o_proj;
  if (name == "gate_proj") return &gate_proj;
  if (name == "up_proj") return &up_proj;
  if (name == "down_proj") return &down_proj;
  return nullptr;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const auto x32 = x.to(accum_dtype(x.scalar_type()));
  const auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor apply_rope(const torch::Tensor& x_BHTD, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x_BHTD.size(-1) / 2;
  const auto x1 = x_BHTD.narrow(-1, 0, half);
  const auto x2 = x_BHTD.narrow(-1, half, half);
  return x_BHTD * cos + torch::cat({-x2, x1}, -1) * sin;
}

torch::Tensor rope_inv_freq(const ModelConfig& c) {
  // As Hugging Face: 1 / theta^(2i / d) in float32.
  const auto exps =
      torch::arange(0, c.head_dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(c.head_dim);
  auto inv_freq = 1.0 / torch::pow(torch::scalar_tensor(c.rope_theta, torch::kFloat32), exps);
  if (!c.rope_scaling) return inv_freq;
  // llama3: long wavelengths are slowed down by `factor`, short ones kept, the band between interpolated.
  const auto& s = *c.rope_scaling;
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  const auto wavelen = 2.0 * M_PI / inv_freq;
  auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  const auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const auto smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  const auto is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(is_medium, smoothed, scaled);
}

// ---- the model
// --------------------------------------------------------------------------------------------------

Transformer::Transformer(ModelConfig config, torch::Device device, torch::Dtype dtype, Weights weights)
    : config_(std::move(config)), device_(device), dtype_(dtype) {
  const auto& c = config_;
  const auto opts =
      torch::dtype(dtype).device(weights == Weights::kPlaceholders ? torch::Device(torch::kMeta) : device);
  const int64_t D = c.hidden_size, q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim,
                F = c.intermediate_size;
  // q/k/v and gate/up get their memory from stack_projections: until then they hold shapes only.
  const bool stack = weights == Weights::kAllocate;
  const auto shapes = torch::dtype(dtype).device(torch::kMeta);
  auto linear = [&](int64_t out, int64_t in, bool bias, bool stacked = false) {
    Linear l;
    l.weight = torch::empty({out, in}, stacked && stack ? shapes : opts);
    if (bias) l.bias = torch::empty({out}, stacked && stack ? shapes : opts);
    return l;
  };
  embed_tokens_ = torch::empty({c.vocab_size, D}, opts);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    DecoderLayer L;
    L.input_layernorm = torch::empty({D}, opts);
    L.post_attention_layernorm = torch::empty({D}, opts);
    L.q_proj = linear(q_dim, D, c.attention_bias, true);
    L.k_proj = linear(kv_dim, D, c.attention_bias, true);
    L.v_proj = linear(kv_dim, D, c.attention_bias, true);
    L.o_proj = linear(D, q_dim, c.o_proj_bias);
    L.gate_proj = linear(F, D, c.mlp_bias, true);
    L.up_proj = linear(F, D, c.mlp_bias, true);
    L.down_proj = linear(D, F, c.mlp_bias);
    if (stack) {
      stack_projections({&L.q_proj, &L.k_proj, &L.v_proj}, opts, L.qkv_weight, L.qkv_bias);
      stack_projections({&L.gate_proj, &L.up_proj}, opts, L.gate_up_weight, L.gate_up_bias);
    }
    layers_.push_back(std::move(L));
  }
  norm_ = torch::empty({D}, opts);
  if (!c.tie_word_embeddings) lm_head_ = torch::empty({c.vocab_size, D}, opts);
  inv_freq_ = rope_inv_freq(c).to(device);
  fused_projections_ = device.is_cuda();
}

std::pair<torch::Tensor, torch::Tensor> Transformer::rope_cos_sin(const torch::Tensor& positions_BT) const {
  // freqs [B, T, head_dim / 2] in float32, duplicated to [B, T, head_dim] as Hugging Face's cat((freqs,
  // freqs)).
  const auto freqs = positions_BT.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;
  const auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);  // [B, 1, T, head_dim]
  return {emb.cos().to(dtype_), emb.sin().to(dtype_)};
}

bool Transformer::projections_stacked(int64_t i) const {
  const DecoderLayer& L = layers_.at(i);
  return tiles({&L.q_proj, &L.k_proj, &L.v_proj}, L.qkv_weight, L.qkv_bias) &&
         tiles({&L.gate_proj, &L.up_proj}, L.gate_up_weight, L.gate_up_bias);
}

torch::Tensor Transformer::decoder_layer(int64_t i, const torch::Tensor& x_BTD, const torch::Tensor& cos,
                                         const torch::Tensor& sin, AttentionBackend& attn, bool lora,
                                         bool train) const {
  const auto& c = config_;
  const DecoderLayer& L = layers_[i];
  const int64_t B = x_BTD.size(0), T = x_BTD.size(1);

  const auto h_BTD = rms_norm(x_BTD, L.input_layernorm, c.rms_norm_eps);
  const std::vector<const Linear*> qkv_parts = {&L.q_proj, &L.k_proj, &L.v_proj};
  const auto qkv = fused_projections_ && tiles(qkv_parts, L.qkv_weight, L.qkv_bias)
                       ? stacked_forward(qkv_parts, L.qkv_weight, L.qkv_bias, h_BTD, lora, train)
                       : std::vector<torch::Tensor>{L.q_proj.forward(h_BTD, lora, train),
                                                    L.k_proj.forward(h_BTD, lora, train),
                                                    L.v_proj.forward(h_BTD, lora, train)};
  auto q = qkv[0].reshape({B, T, c.num_heads, c.head_dim}).transpose(1, 2);
  auto k = qkv[1].reshape({B, T, c.num_kv_heads, c.head_dim}).transpose(1, 2);
  const auto v = qkv[2].reshape({B, T, c.num_kv_heads, c.head_dim}).transpose(1, 2);
  q = apply_rope(q, cos, sin);
  k = apply_rope(k, cos, sin);
  const auto att_BHTD = attn.attend(i, q, k, v);
  const auto att_BTQ = att_BHTD.transpose(1, 2).reshape({B, T, c.num_heads * c.head_dim});
  const auto x1_BTD = x_BTD + L.o_proj.forward(att_BTQ, lora, train);

  const auto h2_BTD = rms_norm(x1_BTD, L.post_attention_layernorm, c.rms_norm_eps);
  const std::vector<const Linear*> gate_up_parts = {&L.gate_proj, &L.up_proj};
  const auto gate_up =
      fused_projections_ && tiles(gate_up_parts, L.gate_up_weight, L.gate_up_bias)
          ? stacked_forward(gate_up_parts, L.gate_up_weight, L.gate_up_bias, h2_BTD, lora, train)
          : std::vector<torch::Tensor>{L.gate_proj.forward(h2_BTD, lora, train),
                                       L.up_proj.forward(h2_BTD, lora, train)};
  return x1_BTD + L.down_proj.forward(torch::silu(gate_up[0]) * gate_up[1], lora, train);
}

torch::Tensor Transformer::forward_hidden(const torch::Tensor& ids_BT, const torch::Tensor& positions_BT,
                                          AttentionBackend& attn) {
  CTM_CHECK(ids_BT.dim() == 2 && positions_BT.sizes() == ids_BT.sizes(), "forward: ids ", ids_BT.sizes(),
            " and positions ", positions_BT.sizes(), " must both be [B, T]");
  BlockCall embed{Block::kEmbedding, -1, nullptr, nullptr};
  embed.run = embed.rerun = [this](const torch::Tensor& ids) { return torch::embedding(embed_tokens_, ids); };
  auto x_BTD = run_block(std::move(embed), ids_BT);
  const auto rope = rope_cos_sin(positions_BT);  // once per forward, shared by every layer
  const torch::Tensor cos = rope.first, sin = rope.second;
  const bool lora = lora_enabled_, train = training_;
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    if (before_layer_) before_layer_(i);
    BlockCall layer{Block::kLayer, i, nullptr, nullptr};
    layer.run = [&, i](const torch::Tensor& x) { return decoder_layer(i, x, cos, sin, attn, lora, train); };
    if (block_runner_) {
      if (auto copy = attn.clone_for_rerun())
        layer.rerun = [this, i, cos, sin, copy, lora, train](const torch::Tensor& x) {
          return decoder_layer(i, x, cos, sin, *copy, lora, train);
        };
    }
    x_BTD = run_block(std::move(layer), x_BTD);
  }
  return rms_norm(x_BTD, norm_, config_.rms_norm_eps);
}

torch::Tensor Transformer::logits(const torch::Tensor& hidden_xD) {
  BlockCall head{Block::kHead, -1, nullptr, nullptr};
  head.run = head.rerun = [this](const torch::Tensor& h) {
    return apply_linear(h, tie() ? embed_tokens_ : lm_head_).to(accum_dtype(dtype_));
  };
  return run_block(std::move(head), hidden_xD);
}

torch::Tensor Transformer::run_block(BlockCall call, const torch::Tensor& input) const {
  return block_runner_ ? block_runner_(call, input) : call.run(input);
}

torch::Tensor Transformer::forward(const torch::Tensor& ids_BT, const torch::Tensor& positions_BT,
                                   AttentionBackend& attn) {
  return logits(forward_hidden(ids_BT, positions_BT, attn));
}

// ---- parameters
// -------------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, torch::Tensor*>> Transformer::named_parameter_slots() {
  std::vector<std::pair<std::string, torch::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens_);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    auto& L = layers_[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.emplace_back(p + "input_layernorm.weight", &L.input_layernorm);
    out.emplace_back(p + "post_attention_layernorm.weight", &L.post_attention_layernorm);
    auto add = [&](const std::string& name, Linear& l) {
      out.emplace_back(p + name + ".weight", &l.weight);
      if (l.bias.defined()) out.emplace_back(p + name + ".bias", &l.bias);
    };
    add("self_attn.q_proj", L.q_proj);
    add("self_attn.k_proj", L.k_proj);
    add("self_attn.v_proj", L.v_proj);
    add("self_attn.o_proj", L.o_proj);
    add("mlp.gate_proj", L.gate_proj);
    add("mlp.up_proj", L.up_proj);
    add("mlp.down_proj", L.down_proj);
  }
  out.emplace_back("model.norm.weight", &norm_);
  if (!tie()) out.emplace_back("lm_head.weight", &lm_head_);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Transformer::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, slot] : const_cast<Transformer*>(this)->named_parameter_slots())
    out.emplace_back(name, *slot);
  return out;
}

std::vector<torch::Tensor> Transformer::parameters() const {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

void Transformer::set_requires_grad(bool trainable) {
  for (auto& [name, t] : named_parameters()) t.set_requires_grad(trainable);
}

bool Transformer::has_lora() const {
  for (const auto& L : layers_)
    for (const auto& name : projection_names())
      if (L.projection(name)->lora) return true;
  return false;
}

std::vector<std::pair<std::string, torch::Tensor>> Transformer::named_lora_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const auto& L = layers_[i];
    for (const auto& name : projection_names()) {
      const Linear* l = L.projection(name);
      if (!l->lora) continue;
      const std::string group =
          (name == "gate_proj" || name == "up_proj" || name == "down_proj") ? "mlp" : "self_attn";
      const std::string p = "model.layers." + std::to_string(i) + "." + group + "." + name + ".";
      out.emplace_back(p + "lora_A.weight", l->lora->A_rI);
      out.emplace_back(p + "lora_B.weight", l->lora->B_Or);
    }
  }
  return out;
}

std::vector<torch::Tensor> Transformer::lora_parameters() const {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : named_lora_parameters()) out.push_back(t);
  return out;
}

}  // namespace ctm::model
