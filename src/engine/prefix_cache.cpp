#include "ctm/engine/prefix_cache.hpp"

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/model/small_batch_linear.hpp"
#include "decode_attention.hpp"

namespace ctm::engine {

SharedPrefixCache::SharedPrefixCache(const model::ModelConfig& config, int64_t num_blocks, int64_t block_size,
                                     torch::Device device, torch::Dtype dtype)
    : num_layers_(config.num_layers),
      num_kv_heads_(config.num_kv_heads),
      head_dim_(config.head_dim),
      block_size_(block_size),
      device_(device),
      dtype_(dtype) {
  CTM_CHECK(num_blocks > 0 && block_size > 0, "SharedPrefixCache: need at least one block (got ", num_blocks,
            " blocks of ", block_size, " tokens)");
  k_pool_.resize(num_layers_);
  v_pool_.resize(num_layers_);
  reserve(num_blocks);
}

int64_t SharedPrefixCache::bytes_per_token(const model::ModelConfig& config, torch::Dtype dtype) {
  return 2 * config.num_layers * config.num_kv_heads * config.head_dim *
         static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t SharedPrefixCache::pool_bytes() const {
  return 2 * num_layers_ * num_blocks() * num_kv_heads_ * block_size_ * head_dim_ *
         static_cast<int64_t>(c10::elementSize(dtype_));
}

void SharedPrefixCache::reserve(int64_t num_blocks) {
  const int64_t old = this->num_blocks();
  if (num_blocks <= old) return;
  CTM_CHECK(num_blocks < (int64_t{1} << 31), "SharedPrefixCache: too many blocks (", num_blocks, ")");
  const auto opts = torch::dtype(dtype_).device(device_);
  for (int64_t l = 0; l < num_layers_; ++l)
    for (auto* pool : {&k_pool_[l], &v_pool_[l]}) {
      auto grown = torch::empty({num_blocks, num_kv_heads_, block_size_, head_dim_}, opts);
      if (old > 0) grown.narrow(0, 0, old).copy_(*pool);
      *pool = std::move(grown);
    }
  pool_.grow(num_blocks);
}

void SharedPrefixCache::copy_tokens(int32_t src, int32_t dst, int64_t tokens) {
  CTM_CHECK(tokens >= 0 && tokens <= block_size_, "SharedPrefixCache: copying ", tokens,
            " tokens of a block of ", block_size_);
  if (tokens == 0 || src == dst) return;
  for (int64_t l = 0; l < num_layers_; ++l)
    for (auto* pool : {&k_pool_[l], &v_pool_[l]})
      (*pool)[dst].narrow(1, 0, tokens).copy_((*pool)[src].narrow(1, 0, tokens));
}

void SharedPrefixCache::begin_extend(const BlockList& blocks, int64_t start) {
  CTM_CHECK(start >= 0, "SharedPrefixCache: extend from position ", start);
  mode_ = Mode::Extend;
  extend_blocks_ = &blocks;
  extend_start_ = start;
}

void SharedPrefixCache::begin_decode(std::vector<Slot> slots) {
  mode_ = Mode::Decode;
  slots_ = std::move(slots);
  // Group the slots by prefix, groups in order of first appearance.
  std::unordered_map<const BlockList*, int64_t> group_of;
  std::vector<std::vector<int64_t>> groups;
  for (int64_t s = 0; s < static_cast<int64_t>(slots_.size()); ++s) {
    const Slot& slot = slots_[s];
    CTM_CHECK(blocks_for(slot.suffix_len + 1) <= static_cast<int64_t>(slot.suffix->size()) &&
                  blocks_for(slot.prefix_len) <= static_cast<int64_t>(slot.prefix->size()),
              "SharedPrefixCache: slot ", s, " has too few blocks for its tokens");
    auto [it, added] = group_of.emplace(slot.prefix, static_cast<int64_t>(groups.size()));
    if (added) groups.emplace_back();
    CTM_CHECK(slots_[groups[it->second].empty() ? s : groups[it->second][0]].prefix_len == slot.prefix_len,
              "SharedPrefixCache: slots sharing a prefix disagree on its length");
    groups[it->second].push_back(s);
  }
  group_slots_.clear();
  group_offsets_.assign(1, 0);
  for (const auto& g : groups) {
    group_slots_.insert(group_slots_.end(), g.begin(), g.end());
    group_offsets_.push_back(static_cast<int64_t>(group_slots_.size()));
  }
}

torch::Tensor SharedPrefixCache::attend(int64_t layer, const torch::Tensor& q_BHTD,
                                        const torch::Tensor& k_BKTD, const torch::Tensor& v_BKTD) {
  CTM_CHECK(layer >= 0 && layer < num_layers_, "SharedPrefixCache: layer ", layer, " of ", num_layers_);
  switch (mode_) {
    case Mode::Extend:
      return attend_extend(layer, q_BHTD, k_BKTD, v_BKTD);
    case Mode::Decode: {
      CTM_CHECK(q_BHTD.size(0) == static_cast<int64_t>(slots_.size()) && q_BHTD.size(2) == 1,
                "SharedPrefixCache: decode forward of shape ", q_BHTD.sizes(), " for ", slots_.size(),
                " slots");
      return use_kernel() ? attend_decode_cpu(layer, q_BHTD, k_BKTD, v_BKTD)
                          : attend_decode_reference(layer, q_BHTD, k_BKTD, v_BKTD);
    }
    default:
      throw Error("SharedPrefixCache: attend() without begin_extend() or begin_decode()");
  }
}

namespace {

// [1, heads, T, D] (one sequence) or [T, heads, 1, D] (T rows) as [T, heads, D].
torch::Tensor as_rows(const torch::Tensor& x) {
  CTM_CHECK(x.dim() == 4 && (x.size(0) == 1 || x.size(2) == 1), "SharedPrefixCache: extend forward of shape ",
            x.sizes(), " (want [1, heads, T, D] or [T, heads, 1, D])");
  return x.size(0) == 1 && x.size(2) != 1 ? x[0].transpose(0, 1) : x.select(2, 0);
}

}  // namespace

torch::Tensor SharedPrefixCache::attend_extend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v) {
  const auto q_THD = as_rows(q), k_TKD = as_rows(k), v_TKD = as_rows(v);
  const int64_t T = q_THD.size(0), start = extend_start_, H = q_THD.size(1);
  CTM_CHECK(blocks_for(start + T) <= static_cast<int64_t>(extend_blocks_->size()),
            "SharedPrefixCache: extending ", start, " tokens by ", T, " in ", extend_blocks_->size(),
            " blocks");
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = start + t;
    write_token(layer, (*extend_blocks_)[pos / block_size_], pos % block_size_, k_TKD[t], v_TKD[t]);
  }
  torch::Tensor out_THD;
  if (use_kernel()) {
    out_THD = attend_extend_cpu(layer, q_THD, T);
  } else {
    const auto keys = gather(k_pool_[layer], *extend_blocks_, start + T).unsqueeze(0).to(q.scalar_type());
    const auto values = gather(v_pool_[layer], *extend_blocks_, start + T).unsqueeze(0).to(q.scalar_type());
    const auto opts = torch::dtype(torch::kInt64).device(q.device());
    const auto allowed =
        (torch::arange(start + T, opts).view({1, -1}) <= torch::arange(start, start + T, opts).view({-1, 1}))
            .view({1, 1, T, start + T});
    out_THD = model::grouped_attention(q_THD.transpose(0, 1).unsqueeze(0), keys, values, allowed,
                                       /*causal=*/false)[0]
                  .transpose(0, 1);
  }
  // Back to the caller's layout.
  return q.size(0) == 1 && q.size(2) != 1 ? out_THD.transpose(0, 1).unsqueeze(0)
                                          : out_THD.view({T, H, 1, head_dim_});
}

void SharedPrefixCache::write_token(int64_t layer, int64_t block, int64_t offset, const torch::Tensor& k_KD,
                                    const torch::Tensor& v_KD) {
  k_pool_[layer][block].select(1, offset).copy_(k_KD);
  v_pool_[layer][block].select(1, offset).copy_(v_KD);
}

torch::Tensor SharedPrefixCache::gather(const torch::Tensor& pool, const BlockList& blocks,
                                        int64_t len) const {
  const int64_t nb = blocks_for(len);
  const auto idx =
      torch::tensor(std::vector<int64_t>(blocks.begin(), blocks.begin() + nb), torch::kInt64).to(device_);
  return pool.index_select(0, idx)
      .permute({1, 0, 2, 3})
      .reshape({num_kv_heads_, nb * block_size_, head_dim_})
      .narrow(1, 0, len);
}

torch::Tensor SharedPrefixCache::attend_decode_reference(int64_t layer, const torch::Tensor& q,
                                                         const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t S = q.size(0);
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < S; ++s) {
    const Slot& slot = slots_[s];
    const int64_t pos = slot.suffix_len;
    write_token(layer, (*slot.suffix)[pos / block_size_], pos % block_size_, k[s].select(1, 0),
                v[s].select(1, 0));
    const auto keys = torch::cat({gather(k_pool_[layer], *slot.prefix, slot.prefix_len),
                                  gather(k_pool_[layer], *slot.suffix, pos + 1)},
                                 1);
    const auto values = torch::cat({gather(v_pool_[layer], *slot.prefix, slot.prefix_len),
                                    gather(v_pool_[layer], *slot.suffix, pos + 1)},
                                   1);
    outs.push_back(model::grouped_attention(q.narrow(0, s, 1), keys.unsqueeze(0).to(q.scalar_type()),
                                            values.unsqueeze(0).to(q.scalar_type()), {}, /*causal=*/false));
  }
  return torch::cat(outs, 0);
}

void SharedPrefixCache::run_kernel(int64_t layer, const float* q, float* out, int64_t H,
                                   const detail::DecodeSlot* slots, const int64_t* group_slots,
                                   const int64_t* group_offsets, int64_t num_groups, float* lse) {
  int64_t scratch = 0;
  for (int64_t g = 0; g < num_groups; ++g) {
    int64_t max_ctx = 0;
    for (int64_t i = group_offsets[g]; i < group_offsets[g + 1]; ++i)
      max_ctx = std::max(max_ctx, slots[group_slots[i]].prefix_len + slots[group_slots[i]].suffix_len);
    scratch = std::max(scratch, (group_offsets[g + 1] - group_offsets[g]) * H * max_ctx);
  }
  // Groups split into contiguous ranges, several per worker and claimed dynamically (a worker that wakes late
  // takes fewer), each range with its own scratch.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(4 * cpu_workers(), num_groups));
  if (static_cast<int64_t>(scratch_.size()) < parts * scratch) scratch_.resize(parts * scratch);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  detail::DecodeAttentionArgs args{q,
                                   out,
                                   k_pool_[layer].data_ptr<float>(),
                                   v_pool_[layer].data_ptr<float>(),
                                   H,
                                   num_kv_heads_,
                                   head_dim_,
                                   block_size_,
                                   slots,
                                   group_slots,
                                   group_offsets,
                                   num_groups,
                                   scale,
                                   scratch_.data(),
                                   lse};
  parallel_tasks(parts, [&](int64_t p) {
    const int64_t g0 = num_groups * p / parts, g1 = num_groups * (p + 1) / parts;
    detail::DecodeAttentionArgs part = args;
    part.group_offsets = group_offsets + g0;
    part.num_groups = g1 - g0;
    part.scratch = scratch_.data() + p * scratch;
    detail::decode_attention(part);
  });
}

torch::Tensor SharedPrefixCache::attend_extend_cpu(int64_t layer, const torch::Tensor& q_THD, int64_t T) {
  // Row t is a slot of its own that reads positions 0 .. start+t of the blocks as its prefix.
  const auto q = q_THD.to(torch::kFloat32).contiguous();
  const int64_t H = q.size(1);
  std::vector<detail::DecodeSlot> slots(T);
  std::vector<int64_t> members(T), offsets(T + 1);
  for (int64_t t = 0; t < T; ++t) {
    slots[t] = {extend_blocks_->data(), extend_start_ + t + 1, nullptr, 0};
    members[t] = t;
    offsets[t + 1] = t + 1;
  }
  auto out = torch::empty({T, H, head_dim_}, torch::kFloat32);
  run_kernel(layer, q.data_ptr<float>(), out.data_ptr<float>(), H, slots.data(), members.data(),
             offsets.data(), T, nullptr);
  return out.to(q_THD.scalar_type());
}

torch::Tensor SharedPrefixCache::attend_decode_cpu(int64_t layer, const torch::Tensor& q_in,
                                                   const torch::Tensor& k_in, const torch::Tensor& v_in) {
  const int64_t S = q_in.size(0), H = q_in.size(1), K = num_kv_heads_, D = head_dim_, BS = block_size_;
  const auto q = q_in.to(torch::kFloat32).contiguous();  // [S, H, 1, D]
  const auto k = k_in.to(torch::kFloat32).contiguous();  // [S, K, 1, D]
  const auto v = v_in.to(torch::kFloat32).contiguous();
  float* kp = k_pool_[layer].data_ptr<float>();
  float* vp = v_pool_[layer].data_ptr<float>();
  const float* kn = k.data_ptr<float>();
  const float* vn = v.data_ptr<float>();
  std::vector<detail::DecodeSlot> dslots(S);
  for (int64_t s = 0; s < S; ++s) {
    const Slot& slot = slots_[s];
    const int64_t pos = slot.suffix_len, blk = (*slot.suffix)[pos / BS], off = pos % BS;
    for (int64_t h = 0; h < K; ++h) {
      std::memcpy(kp + ((blk * K + h) * BS + off) * D, kn + (s * K + h) * D, D * sizeof(float));
      std::memcpy(vp + ((blk * K + h) * BS + off) * D, vn + (s * K + h) * D, D * sizeof(float));
    }
    dslots[s] = {slot.prefix->data(), slot.prefix_len, slot.suffix->data(), pos + 1};
  }
  // Large groups: their prefix part as matrix products below; the kernel then reads only their suffixes.
  std::vector<size_t> gemm_groups;
  for (size_t g = 0; g + 1 < group_offsets_.size(); ++g) {
    const int64_t count = group_offsets_[g + 1] - group_offsets_[g];
    if (count >= prefix_gemm_min_group_ && dslots[group_slots_[group_offsets_[g]]].prefix_len > 0) {
      gemm_groups.push_back(g);
      for (int64_t i = group_offsets_[g]; i < group_offsets_[g + 1]; ++i)
        dslots[group_slots_[i]].prefix_len = 0;
    }
  }
  auto out = torch::empty({S, H, 1, D}, torch::kFloat32);
  auto lse = torch::empty({S, H}, torch::kFloat32);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  run_kernel(layer, q.data_ptr<float>(), out.data_ptr<float>(), H, dslots.data(), group_slots_.data(),
             group_offsets_.data(), static_cast<int64_t>(group_offsets_.size()) - 1,
             gemm_groups.empty() ? nullptr : lse.data_ptr<float>());
  for (size_t g : gemm_groups) {
    // softmax over [prefix, suffix] = the two partial softmaxes weighted by their shares of the total mass.
    const int64_t first = group_offsets_[g], n = group_offsets_[g + 1] - first, G = H / K;
    const auto idx = torch::from_blob(group_slots_.data() + first, {n}, torch::kInt64).clone();
    const Slot& slot = slots_[group_slots_[first]];
    const auto q_KMD = q.index_select(0, idx).view({n, K, G, D}).permute({1, 0, 2, 3}).reshape({K, n * G, D});
    const auto k_KPD = gather(k_pool_[layer], *slot.prefix, slot.prefix_len);
    const auto v_KPD = gather(v_pool_[layer], *slot.prefix, slot.prefix_len);
    // Per key/value head through the small-batch kernel (OpenBLAS here would wake its own threads, which then
    // spin against ctm's workers for the rest of the step).
    std::vector<torch::Tensor> scores_MP(K), o_MD(K);
    for (int64_t kh = 0; kh < K; ++kh) scores_MP[kh] = model::apply_linear(q_KMD[kh], k_KPD[kh]);
    const auto scores_KMP = torch::stack(scores_MP) * scale;
    const auto max_KM1 = std::get<0>(scores_KMP.max(-1, true));
    const auto e_KMP = (scores_KMP - max_KM1).exp_();
    const auto sum_KM1 = e_KMP.sum(-1, true);
    for (int64_t kh = 0; kh < K; ++kh) o_MD[kh] = model::apply_linear(e_KMP[kh], v_KPD[kh].t().contiguous());
    const auto o1_KMD = torch::stack(o_MD) / sum_KM1;
    const auto lse1_nH = (max_KM1 + sum_KM1.log()).view({K, n, G}).permute({1, 0, 2}).reshape({n, H});
    const auto o1_nHD = o1_KMD.view({K, n, G, D}).permute({1, 0, 2, 3}).reshape({n, H, D});
    const auto lse2_nH = lse.index_select(0, idx);
    const auto total_nH = torch::logaddexp(lse1_nH, lse2_nH);
    const auto merged = o1_nHD * (lse1_nH - total_nH).exp().unsqueeze(-1) +
                        out.index_select(0, idx).view({n, H, D}) * (lse2_nH - total_nH).exp().unsqueeze(-1);
    out.index_copy_(0, idx, merged.view({n, H, 1, D}));
  }
  return out.to(q_in.scalar_type());
}

}  // namespace ctm::engine
