#include "ctm/engine/prefix_cache.hpp"

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "ctm/core/error.hpp"
#include "ctm/core/worker_pool.hpp"
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
  // The torch path reads whole blocks and masks the unused positions, whose values still enter a product
  // (with weight 0): they must be finite, so its pools start at zero. The CPU kernel reads only what was
  // written.
  const auto make = [&](std::vector<int64_t> shape) {
    return use_kernel() ? torch::empty(shape, opts) : torch::zeros(shape, opts);
  };
  for (int64_t l = 0; l < num_layers_; ++l)
    for (auto* pool : {&k_pool_[l], &v_pool_[l]}) {
      auto grown = pool == &k_pool_[l] ? make({num_blocks, num_kv_heads_, head_dim_, block_size_})
                                       : make({num_blocks, num_kv_heads_, block_size_, head_dim_});
      if (old > 0) grown.narrow(0, 0, old).copy_(*pool);
      *pool = std::move(grown);
    }
  pool_.grow(num_blocks);
}

void SharedPrefixCache::copy_tokens(int32_t src, int32_t dst, int64_t tokens) {
  CTM_CHECK(tokens >= 0 && tokens <= block_size_, "SharedPrefixCache: copying ", tokens,
            " tokens of a block of ", block_size_);
  if (tokens == 0 || src == dst) return;
  for (int64_t l = 0; l < num_layers_; ++l) {
    k_pool_[l][dst].narrow(2, 0, tokens).copy_(k_pool_[l][src].narrow(2, 0, tokens));
    v_pool_[l][dst].narrow(1, 0, tokens).copy_(v_pool_[l][src].narrow(1, 0, tokens));
  }
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
  if (!use_kernel()) build_batched_decode();
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
                          : attend_decode_batched(layer, q_BHTD, k_BKTD, v_BKTD);
    }
    default:
      throw Error("SharedPrefixCache: attend() without begin_extend() or begin_decode()");
  }
}

namespace {

// int64 indices on a device.
torch::Tensor index_tensor(const std::vector<int64_t>& values, torch::Device device) {
  return torch::tensor(values, torch::kInt64).to(device);
}

// [1, heads, T, D] (one sequence) or [T, heads, 1, D] (T rows) as [T, heads, D].
torch::Tensor as_rows(const torch::Tensor& x) {
  CTM_CHECK(x.dim() == 4 && (x.size(0) == 1 || x.size(2) == 1), "SharedPrefixCache: extend forward of shape ",
            x.sizes(), " (want [1, heads, T, D] or [T, heads, 1, D])");
  return x.size(0) == 1 && x.size(2) != 1 ? x[0].transpose(0, 1) : x.select(2, 0);
}

// Rows [R, heads, D] of a tensor as float32 rows: a base pointer and a row stride, with no copy when each
// row's heads lie contiguously (the row decoder's q/k/v views into its qkv buffer); else a contiguous copy,
// held.
struct Rows {
  torch::Tensor held;
  const float* data;
  int64_t stride;
};
Rows float_rows(const torch::Tensor& x_RHD) {
  const int64_t H = x_RHD.size(1), D = x_RHD.size(2);
  if (x_RHD.scalar_type() == torch::kFloat32 && x_RHD.stride(2) == 1 && (H == 1 || x_RHD.stride(1) == D))
    return {x_RHD, x_RHD.data_ptr<float>(), x_RHD.stride(0)};
  auto c = x_RHD.to(torch::kFloat32).contiguous();
  return {c, c.data_ptr<float>(), H * D};
}

}  // namespace

torch::Tensor SharedPrefixCache::attend_extend(int64_t layer, const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v) {
  const auto q_THD = as_rows(q), k_TKD = as_rows(k), v_TKD = as_rows(v);
  const int64_t T = q_THD.size(0), start = extend_start_, H = q_THD.size(1), D = head_dim_;
  CTM_CHECK(blocks_for(start + T) <= static_cast<int64_t>(extend_blocks_->size()),
            "SharedPrefixCache: extending ", start, " tokens by ", T, " in ", extend_blocks_->size(),
            " blocks");
  torch::Tensor out_THD;
  if (use_kernel()) {
    // Row t is a slot of its own that reads positions 0 .. start+t of the blocks: one group.
    const Rows qr = float_rows(q_THD);
    // Every row's key/value first: a row reads those of the rows before it.
    const std::vector<const int32_t*> blocks(T, extend_blocks_->data());
    std::vector<int64_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[t] = start + t;
    const Rows kr = float_rows(k_TKD), vr = float_rows(v_TKD);
    const NewRows rows = new_rows(layer, kr.data, kr.stride, vr.data, vr.stride, blocks.data(), pos.data());
    parallel_ranges(T, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t h = 0; h < num_kv_heads_; ++h) write_row_cpu(rows, r, h);
    });
    out_THD = torch::empty({T, H, D}, torch::kFloat32);
    std::vector<detail::AttentionSlot> slots(T);
    std::vector<int64_t> members(T);
    for (int64_t t = 0; t < T; ++t) {
      slots[t] = {qr.data + t * qr.stride,
                  out_THD.data_ptr<float>() + t * H * D,
                  extend_blocks_->data(),
                  start + t + 1,
                  nullptr,
                  0};
      members[t] = t;
    }
    const int64_t offsets[2] = {0, T};
    attend_cpu(layer, H, slots, members.data(), offsets, 1);
  } else {
    std::vector<int64_t> block(T), offset(T);
    for (int64_t t = 0; t < T; ++t) {
      block[t] = (*extend_blocks_)[(start + t) / block_size_];
      offset[t] = (start + t) % block_size_;
    }
    write_rows(layer, index_tensor(block, device_), index_tensor(offset, device_), k_TKD, v_TKD);
    const int64_t nb = blocks_for(start + T);
    const auto table =
        index_tensor({extend_blocks_->begin(), extend_blocks_->begin() + nb}, device_).view({1, nb});
    const auto keys =
        gather(layer, /*keys=*/true, table).narrow(3, 0, start + T).transpose(2, 3).to(q.scalar_type());
    const auto values = gather(layer, /*keys=*/false, table).narrow(2, 0, start + T).to(q.scalar_type());
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

void SharedPrefixCache::set_force_reference(bool on) {
  const bool was_kernel = use_kernel();
  force_reference_ = on;
  if (was_kernel && !use_kernel())  // the pools were made for the kernel: see reserve()
    for (int64_t l = 0; l < num_layers_; ++l) {
      k_pool_[l].zero_();
      v_pool_[l].zero_();
    }
}

void SharedPrefixCache::write_rows(int64_t layer, const torch::Tensor& block_N, const torch::Tensor& offset_N,
                                   const torch::Tensor& k_NKD, const torch::Tensor& v_NKD) {
  using torch::indexing::Slice;
  // Keys are transposed within a block ([.., head_dim, block_size]): the two indexed dimensions are not
  // adjacent, so the indexed view is [N, K, D] in both pools.
  k_pool_[layer].index_put_({block_N, Slice(), Slice(), offset_N}, k_NKD.to(dtype_));
  v_pool_[layer].index_put_({block_N, Slice(), offset_N}, v_NKD.to(dtype_));
}

torch::Tensor SharedPrefixCache::gather(int64_t layer, bool keys, const torch::Tensor& blocks_NB) const {
  const int64_t N = blocks_NB.size(0), nb = blocks_NB.size(1), K = num_kv_heads_, D = head_dim_;
  const auto& pool = keys ? k_pool_[layer] : v_pool_[layer];
  const auto x = pool.index_select(0, blocks_NB.reshape({-1})).view({N, nb, K, pool.size(2), pool.size(3)});
  return keys ? x.permute({0, 2, 3, 1, 4}).reshape({N, K, D, nb * block_size_})
              : x.permute({0, 2, 1, 3, 4}).reshape({N, K, nb * block_size_, D});
}

namespace {

// The first `tokens` positions of a block list.
struct Span {
  const int32_t* blocks;
  int64_t tokens;
};

// A block table [rows, cols] (padded with block 0) whose row r lays the blocks of its spans end to end, and
// its valid positions [rows, cols * block_size] (the first `tokens` of each span's blocks).
std::pair<torch::Tensor, torch::Tensor> block_table(const std::vector<std::vector<Span>>& rows,
                                                    int64_t block_size, torch::Device device) {
  const auto blocks_of = [&](const Span& span) { return (span.tokens + block_size - 1) / block_size; };
  const int64_t R = static_cast<int64_t>(rows.size());
  int64_t cols = 1;
  for (const auto& row : rows) {
    int64_t n = 0;
    for (const Span& span : row) n += blocks_of(span);
    cols = std::max(cols, n);
  }
  std::vector<int64_t> table(R * cols, 0);
  std::vector<uint8_t> valid(R * cols * block_size, 0);
  for (int64_t r = 0; r < R; ++r) {
    int64_t c = r * cols;
    for (const Span& span : rows[r]) {
      std::fill_n(valid.begin() + c * block_size, span.tokens, 1);
      for (int64_t i = 0; i < blocks_of(span); ++i) table[c++] = span.blocks[i];
    }
  }
  auto valid_t = torch::from_blob(valid.data(), {R, cols * block_size}, torch::kUInt8).to(torch::kBool);
  return {index_tensor(table, device).view({R, cols}), valid_t.to(device)};
}

// Attention of queries q [N, K, R, D] (R query heads per key/value head, in the model's dtype) over keys_t
// [N, K, D, L] and values [N, K, L, D] where valid [N, L]: the output [N, K, R, D] and the log-sum-exp [N, K,
// R, 1] of the scores, both float32. Scores and softmax in float32 (the products in the model's dtype, as
// Hugging Face's eager attention). A row with no valid key gets a log-sum-exp near -1e30: no weight when
// merged.
std::pair<torch::Tensor, torch::Tensor> partial_attention(const torch::Tensor& q, const torch::Tensor& keys_t,
                                                          const torch::Tensor& values,
                                                          const torch::Tensor& valid, double scale) {
  auto scores = torch::matmul(q, keys_t).to(torch::kFloat32).mul_(scale);
  scores.masked_fill_(valid.logical_not().view({valid.size(0), 1, 1, valid.size(1)}), -1e30f);
  const auto lse = torch::logsumexp(scores, -1, /*keepdim=*/true);
  const auto probs = scores.sub_(lse).exp_().to(values.scalar_type());
  return {torch::matmul(probs, values).to(torch::kFloat32), lse};
}

}  // namespace

void SharedPrefixCache::build_batched_decode() {
  const int64_t S = static_cast<int64_t>(slots_.size()), G = static_cast<int64_t>(group_offsets_.size()) - 1;
  BatchedDecode& b = batched_;
  b.groups = G;
  b.group_size = 0;
  for (int64_t g = 0; g < G; ++g)
    b.group_size = std::max(b.group_size, group_offsets_[g + 1] - group_offsets_[g]);
  std::vector<int64_t> write_block(S), write_offset(S);
  std::vector<std::vector<Span>> slot_rows(S);
  for (int64_t s = 0; s < S; ++s) {
    const Slot& slot = slots_[s];
    write_block[s] = (*slot.suffix)[slot.suffix_len / block_size_];
    write_offset[s] = slot.suffix_len % block_size_;
    // With one slot a group, its prefix is read through the slot's own table (no second pass, no merge).
    if (b.group_size == 1) slot_rows[s].push_back({slot.prefix->data(), slot.prefix_len});
    slot_rows[s].push_back({slot.suffix->data(), slot.suffix_len + 1});  // the new token included
  }
  b.write_block = index_tensor(write_block, device_);
  b.write_offset = index_tensor(write_offset, device_);
  std::tie(b.slot_blocks, b.slot_valid) = block_table(slot_rows, block_size_, device_);
  if (b.group_size == 1) return;
  std::vector<int64_t> grid(G * b.group_size, S), cells(S);
  std::vector<std::vector<Span>> prefix_rows(G);
  for (int64_t g = 0; g < G; ++g) {
    const Slot& first = slots_[group_slots_[group_offsets_[g]]];
    prefix_rows[g].push_back({first.prefix->data(), first.prefix_len});
    for (int64_t i = group_offsets_[g]; i < group_offsets_[g + 1]; ++i) {
      const int64_t cell = g * b.group_size + (i - group_offsets_[g]);
      grid[cell] = group_slots_[i];
      cells[group_slots_[i]] = cell;
    }
  }
  std::tie(b.prefix_blocks, b.prefix_valid) = block_table(prefix_rows, block_size_, device_);
  b.grid_rows = index_tensor(grid, device_);
  b.slot_cells = index_tensor(cells, device_);
}

torch::Tensor SharedPrefixCache::attend_decode_batched(int64_t layer, const torch::Tensor& q_in,
                                                       const torch::Tensor& k_in, const torch::Tensor& v_in) {
  const BatchedDecode& b = batched_;
  const int64_t S = q_in.size(0), H = q_in.size(1), K = num_kv_heads_, D = head_dim_, R = H / K;
  const int64_t G = b.groups, M = b.group_size;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  write_rows(layer, b.write_block, b.write_offset, k_in.select(2, 0), v_in.select(2, 0));
  const auto q_SHD = q_in.select(2, 0).to(dtype_);
  // Each slot over its own table: its suffix, with its prefix in front when every group has one slot.
  auto [out_s, lse_s] =
      partial_attention(q_SHD.view({S, K, R, D}), gather(layer, /*keys=*/true, b.slot_blocks),
                        gather(layer, /*keys=*/false, b.slot_blocks), b.slot_valid, scale);
  if (M == 1) return out_s.view({S, H, 1, D}).to(q_in.scalar_type());
  out_s = out_s.view({S, H, D});
  lse_s = lse_s.view({S, H, 1});
  // Shared prefixes: the queries of a group's slots on a [G, M] grid (empty cells: a zero row), one pass per
  // group.
  const auto padded = torch::cat({q_SHD, torch::zeros({1, H, D}, q_SHD.options())});
  const auto q_grid =
      padded.index_select(0, b.grid_rows).view({G, M, K, R, D}).transpose(1, 2).reshape({G, K, M * R, D});
  auto [out_p, lse_p] =
      partial_attention(q_grid, gather(layer, /*keys=*/true, b.prefix_blocks),
                        gather(layer, /*keys=*/false, b.prefix_blocks), b.prefix_valid, scale);
  const auto to_slots = [&](const torch::Tensor& x, int64_t last) {  // [G, K, M * R, last] -> [S, H, last]
    return x.view({G, K, M, R, last}).transpose(1, 2).reshape({G * M, H, last}).index_select(0, b.slot_cells);
  };
  out_p = to_slots(out_p, D);
  lse_p = to_slots(lse_p, 1);
  // softmax over [prefix, suffix] = the two partial softmaxes weighted by their shares of the total mass.
  const auto top = torch::maximum(lse_p, lse_s);
  const auto w_p = (lse_p - top).exp_(), w_s = (lse_s - top).exp_();
  const auto out = (out_p * w_p + out_s * w_s) / (w_p + w_s);
  return out.view({S, H, 1, D}).to(q_in.scalar_type());
}

SharedPrefixCache::NewRows SharedPrefixCache::new_rows(int64_t layer, const float* k, int64_t k_stride,
                                                       const float* v, int64_t v_stride,
                                                       const int32_t* const* blocks,
                                                       const int64_t* positions) {
  return {k,
          k_stride,
          v,
          v_stride,
          blocks,
          positions,
          k_pool_[layer].data_ptr<float>(),
          v_pool_[layer].data_ptr<float>()};
}

void SharedPrefixCache::write_row_cpu(const NewRows& rows, int64_t r, int64_t h) const {
  const int64_t K = num_kv_heads_, D = head_dim_, BS = block_size_;
  const int64_t blk = rows.blocks[r][rows.positions[r] / BS], off = rows.positions[r] % BS;
  const float* kr = rows.k + r * rows.k_stride + h * D;
  float* kt = rows.k_pool + ((blk * K + h) * D) * BS + off;  // transposed within the block
  for (int64_t d = 0; d < D; ++d) kt[d * BS] = kr[d];
  std::memcpy(rows.v_pool + ((blk * K + h) * BS + off) * D, rows.v + r * rows.v_stride + h * D,
              D * sizeof(float));
}

void SharedPrefixCache::attend_cpu(int64_t layer, int64_t H, const std::vector<detail::AttentionSlot>& slots,
                                   const int64_t* group_slots, const int64_t* group_offsets,
                                   int64_t num_groups, const NewRows* own_rows) {
  // Tasks: (group, key/value head, a run of at most ~24 of the group's slots), claimed by the workers. A run
  // reads the group's prefix once for all its slots. With own_rows, a task first writes its slots' new
  // keys/values for its head (only that slot reads them).
  struct Task {
    int64_t first, count, kh;
  };
  std::vector<Task> tasks;
  for (int64_t g = 0; g < num_groups; ++g) {
    const int64_t begin = group_offsets[g], n = group_offsets[g + 1] - begin, runs = (n + 23) / 24;
    for (int64_t kh = 0; kh < num_kv_heads_; ++kh)
      for (int64_t r = 0; r < runs; ++r)
        tasks.push_back({begin + n * r / runs, n * (r + 1) / runs - n * r / runs, kh});
  }
  const detail::AttentionPool pool{k_pool_[layer].data_ptr<float>(),
                                   v_pool_[layer].data_ptr<float>(),
                                   H,
                                   num_kv_heads_,
                                   head_dim_,
                                   block_size_,
                                   static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim_)))};
  parallel_tasks(static_cast<int64_t>(tasks.size()), [&](int64_t i) {
    const Task& t = tasks[i];
    if (own_rows)
      for (int64_t m = t.first; m < t.first + t.count; ++m) write_row_cpu(*own_rows, group_slots[m], t.kh);
    detail::attend_group(pool, slots.data(), group_slots + t.first, t.count, t.kh);
  });
}

torch::Tensor SharedPrefixCache::attend_decode_cpu(int64_t layer, const torch::Tensor& q_in,
                                                   const torch::Tensor& k_in, const torch::Tensor& v_in) {
  const int64_t S = q_in.size(0), H = q_in.size(1), D = head_dim_;
  const Rows q = float_rows(q_in.select(2, 0));  // [S, H, D]
  std::vector<const int32_t*> blocks(S);
  std::vector<int64_t> positions(S);
  for (int64_t s = 0; s < S; ++s) {
    blocks[s] = slots_[s].suffix->data();
    positions[s] = slots_[s].suffix_len;
  }
  const Rows kr = float_rows(k_in.select(2, 0)), vr = float_rows(v_in.select(2, 0));
  const NewRows own =
      new_rows(layer, kr.data, kr.stride, vr.data, vr.stride, blocks.data(), positions.data());
  auto out = torch::empty({S, H, 1, D}, torch::kFloat32);
  std::vector<detail::AttentionSlot> slots(S);
  for (int64_t s = 0; s < S; ++s) {
    const Slot& sl = slots_[s];
    slots[s] = {q.data + s * q.stride, out.data_ptr<float>() + s * H * D,
                sl.prefix->data(),     sl.prefix_len,
                sl.suffix->data(),     sl.suffix_len + 1};
  }
  attend_cpu(layer, H, slots, group_slots_.data(), group_offsets_.data(),
             static_cast<int64_t>(group_offsets_.size()) - 1, &own);
  return out.to(q_in.scalar_type());
}

}  // namespace ctm::engine
