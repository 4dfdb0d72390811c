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
      num_blocks_(num_blocks),
      block_size_(block_size),
      device_(device),
      dtype_(dtype) {
  CTM_CHECK(num_blocks > 0 && block_size > 0, "SharedPrefixCache: need at least one block (got ", num_blocks,
            " blocks of ", block_size, " tokens)");
  CTM_CHECK(num_blocks < (int64_t{1} << 31), "SharedPrefixCache: too many blocks (", num_blocks, ")");
  const auto opts = torch::dtype(dtype).device(device);
  for (int64_t l = 0; l < num_layers_; ++l) {
    k_pool_.push_back(torch::empty({num_blocks, num_kv_heads_, block_size, head_dim_}, opts));
    v_pool_.push_back(torch::empty({num_blocks, num_kv_heads_, block_size, head_dim_}, opts));
  }
  free_.reserve(num_blocks);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t SharedPrefixCache::bytes_per_token(const model::ModelConfig& config, torch::Dtype dtype) {
  return 2 * config.num_layers * config.num_kv_heads * config.head_dim *
         static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t SharedPrefixCache::pool_bytes() const {
  return 2 * num_layers_ * num_blocks_ * num_kv_heads_ * block_size_ * head_dim_ *
         static_cast<int64_t>(c10::elementSize(dtype_));
}

bool SharedPrefixCache::allocate(int64_t n, BlockList& out) {
  if (n > free_blocks()) return false;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void SharedPrefixCache::release(BlockList& blocks) {
  for (int32_t b : blocks) free_.push_back(b);
  blocks.clear();
}

void SharedPrefixCache::begin_prefill(const BlockList& prefix) {
  mode_ = Mode::Prefill;
  prefill_blocks_ = &prefix;
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
    case Mode::Prefill:
      return attend_prefill(layer, q_BHTD, k_BKTD, v_BKTD);
    case Mode::Decode: {
      CTM_CHECK(q_BHTD.size(0) == static_cast<int64_t>(slots_.size()) && q_BHTD.size(2) == 1,
                "SharedPrefixCache: decode forward of shape ", q_BHTD.sizes(), " for ", slots_.size(),
                " slots");
      const bool kernel = !force_reference_ && device_.is_cpu() && dtype_ == torch::kFloat32;
      return kernel ? attend_decode_cpu(layer, q_BHTD, k_BKTD, v_BKTD)
                    : attend_decode_reference(layer, q_BHTD, k_BKTD, v_BKTD);
    }
    default:
      throw Error("SharedPrefixCache: attend() without begin_prefill() or begin_decode()");
  }
}

torch::Tensor SharedPrefixCache::attend_prefill(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                                const torch::Tensor& v) {
  const int64_t T = k.size(2);
  CTM_CHECK(k.size(0) == 1, "SharedPrefixCache: prefill takes one sequence, got ", k.size(0));
  CTM_CHECK(blocks_for(T) <= static_cast<int64_t>(prefill_blocks_->size()), "SharedPrefixCache: prefill of ",
            T, " tokens into ", prefill_blocks_->size(), " blocks");
  const auto k_KTD = k[0].to(dtype_), v_KTD = v[0].to(dtype_);
  for (int64_t j = 0; j * block_size_ < T; ++j) {
    const int64_t n = std::min(block_size_, T - j * block_size_);
    const int64_t blk = (*prefill_blocks_)[j];
    k_pool_[layer][blk].narrow(1, 0, n).copy_(k_KTD.narrow(1, j * block_size_, n));
    v_pool_[layer][blk].narrow(1, 0, n).copy_(v_KTD.narrow(1, j * block_size_, n));
  }
  return model::grouped_attention(q, k, v, {}, /*causal=*/true);
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
  int64_t scratch = 0;
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
  for (size_t g = 0; g + 1 < group_offsets_.size(); ++g) {
    int64_t max_ctx = 0;
    for (int64_t i = group_offsets_[g]; i < group_offsets_[g + 1]; ++i)
      max_ctx = std::max(max_ctx, dslots[group_slots_[i]].prefix_len + dslots[group_slots_[i]].suffix_len);
    scratch = std::max(scratch, (group_offsets_[g + 1] - group_offsets_[g]) * H * max_ctx);
  }
  // Groups split into contiguous ranges, several per worker and claimed dynamically (a worker that wakes late
  // takes fewer), each range with its own scratch.
  const int64_t num_groups = static_cast<int64_t>(group_offsets_.size()) - 1;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(4 * cpu_workers(), num_groups));
  if (static_cast<int64_t>(scratch_.size()) < parts * scratch) scratch_.resize(parts * scratch);
  auto out = torch::empty({S, H, 1, D}, torch::kFloat32);
  auto lse = torch::empty({S, H}, torch::kFloat32);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  detail::DecodeAttentionArgs args{q.data_ptr<float>(),
                                   out.data_ptr<float>(),
                                   kp,
                                   vp,
                                   H,
                                   K,
                                   D,
                                   BS,
                                   dslots.data(),
                                   group_slots_.data(),
                                   group_offsets_.data(),
                                   num_groups,
                                   scale,
                                   scratch_.data(),
                                   gemm_groups.empty() ? nullptr : lse.data_ptr<float>()};
  parallel_tasks(parts, [&](int64_t p) {
    const int64_t g0 = num_groups * p / parts, g1 = num_groups * (p + 1) / parts;
    detail::DecodeAttentionArgs part = args;
    part.group_offsets = group_offsets_.data() + g0;
    part.num_groups = g1 - g0;
    part.scratch = scratch_.data() + p * scratch;
    detail::decode_attention(part);
  });
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
