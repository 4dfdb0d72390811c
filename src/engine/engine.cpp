#include "ctm/engine/engine.hpp"

#include <algorithm>
#include <chrono>

#include "ctm/core/clock.hpp"
#include "ctm/core/error.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "model_runner.hpp"
#include "scheduler.hpp"

namespace ctm::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Eos:
      return "eos";
    default:
      return "length";
  }
}

// ---- cached prefixes
// --------------------------------------------------------------------------------------------

CachedPrefix::CachedPrefix(std::shared_ptr<SharedPrefixCache> cache, BlockList blocks,
                           std::vector<int32_t> ids, int64_t logits_from, int64_t vocab,
                           std::vector<float> logits)
    : cache_(std::move(cache)),
      blocks_(std::move(blocks)),
      ids_(std::move(ids)),
      logits_from_(logits_from),
      vocab_(vocab),
      logits_(std::move(logits)) {}

CachedPrefix::~CachedPrefix() {
  cache_->release(blocks_);
}

const float* CachedPrefix::logits(int64_t pos) const {
  CTM_CHECK(has_logits(pos), "cached prefix: no logits kept for position ", pos, " (kept: ", logits_from_,
            " .. ", size() - 1, ")");
  return logits_.data() + (pos - logits_from_) * vocab_;
}

// ---- the engine
// -------------------------------------------------------------------------------------------------

Engine::Engine(model::Transformer& model, const text::Tokenizer& tokenizer, EngineOptions options)
    : Engine(model, &tokenizer, std::move(options)) {}

Engine::Engine(model::Transformer& model, const text::Tokenizer* tokenizer, EngineOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)) {
  CTM_CHECK(options_.max_batch > 0, "engine: max_batch must be positive (got ", options_.max_batch, ")");
  CTM_CHECK(options_.block_size > 0, "engine: block_size must be positive (got ", options_.block_size, ")");
  CTM_CHECK(kv_budget_blocks() >= 1, "engine: KV budget of ", options_.kv_budget_bytes,
            " bytes is below one block (", block_bytes(), " bytes)");
  const auto& cfg = model_.config();
  vocab_ = tokenizer_ ? std::min<int64_t>(cfg.vocab_size, tokenizer_->vocab_size()) : cfg.vocab_size;
  if (options_.eos_ids.empty()) {
    if (tokenizer_)
      if (auto e = tokenizer_->eos_id()) options_.eos_ids.push_back(*e);
    for (int64_t e : cfg.eos_token_ids)
      if (std::find(options_.eos_ids.begin(), options_.eos_ids.end(), e) == options_.eos_ids.end())
        options_.eos_ids.push_back(static_cast<int32_t>(e));
  }
  cache_ = std::make_shared<SharedPrefixCache>(cfg, 1, options_.block_size, model_.device(), model_.dtype());
  runner_ = std::make_unique<ModelRunner>(model_);
}

Engine::~Engine() = default;

int64_t Engine::block_bytes() const {
  return options_.block_size * SharedPrefixCache::bytes_per_token(model_.config(), model_.dtype());
}
int64_t Engine::kv_budget_blocks() const {
  return options_.kv_budget_bytes / block_bytes();
}
int64_t Engine::kv_blocks_in_use() const {
  return cache_->used_blocks();
}
int64_t Engine::kv_blocks_allocated() const {
  return cache_->num_blocks();
}

SharedPrefixCache& Engine::reserve_blocks(int64_t blocks) {
  cache_->reserve(std::min(blocks, kv_budget_blocks()));
  return *cache_;
}

PrefixHandle Engine::cache_prefix(const std::vector<int32_t>& ids, int64_t logits_from) {
  c10::InferenceMode inference;
  const auto& cfg = model_.config();
  const int64_t T = static_cast<int64_t>(ids.size());
  CTM_CHECK(T >= 1, "cache_prefix: empty token sequence");
  CTM_CHECK(T < cfg.max_position_embeddings, "cache_prefix: ", T, " tokens do not fit the model's ",
            cfg.max_position_embeddings, " positions");
  CTM_CHECK(logits_from >= 0 && logits_from <= T, "cache_prefix: logits_from ", logits_from, " outside [0, ",
            T, "]");
  for (int32_t id : ids)
    CTM_CHECK(id >= 0 && id < cfg.vocab_size, "cache_prefix: token id ", id, " outside the vocabulary of ",
              cfg.vocab_size);
  SharedPrefixCache& cache = reserve_blocks(cache_->used_blocks() + cache_->blocks_for(T));
  BlockList blocks;
  CTM_CHECK(cache.allocate(cache.blocks_for(T), blocks), "cache_prefix: ", T, " tokens need ",
            cache.blocks_for(T) * block_bytes(), " bytes of KV cache; the budget of ",
            options_.kv_budget_bytes, " bytes has ", cache.free_blocks() * block_bytes(),
            " free next to the cached prefixes held");
  torch::Tensor logits;
  try {
    logits = runner_->extend(cache, blocks, 0, ids.data(), T, logits_from);
  } catch (...) {
    cache.release(blocks);
    throw;
  }
  const int64_t V = logits.defined() ? logits.size(1) : cfg.vocab_size;
  std::vector<float> kept;
  if (logits.defined()) kept.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  return std::make_shared<CachedPrefix>(cache_, std::move(blocks), ids, logits_from, V, std::move(kept));
}

std::vector<RequestOutput> Engine::generate(const std::vector<Request>& requests,
                                            const std::function<void(const RequestOutput&)>& on_done) {
  c10::InferenceMode inference;
  const auto t_start = std::chrono::steady_clock::now();
  stats_ = EngineStats{};
  const auto& cfg = model_.config();
  SchedulerContext ctx{
      *runner_,      *cache_, tokenizer_, options_, vocab_, cfg.vocab_size, cfg.max_position_embeddings,
      block_bytes(), stats_};
  // Validate every request up front (an error names the request) and grow the pool to what the workload
  // needs next to the blocks held already, within the budget.
  const int64_t N = static_cast<int64_t>(requests.size());
  std::vector<RequestState> states(N);
  int64_t workload_blocks = 0;
  for (int64_t i = 0; i < N; ++i) {
    validate_request(requests[i], i, ctx, states[i]);
    workload_blocks += states[i].plan.own_blocks + requests[i].params.n * states[i].suffix_blocks;
  }
  // Before any work: every request must fit on its own (its prompt's fresh blocks + one sample's worst case)
  // in what the budget leaves next to the blocks held by cached prefixes.
  const int64_t held = cache_->used_blocks(), free_budget = kv_budget_blocks() - held;
  for (const RequestState& st : states) {
    const int64_t need = st.plan.own_blocks + st.suffix_blocks;
    CTM_CHECK(need <= free_budget, "engine: request ", st.index, " (id ", st.req->id, ") needs ",
              need * block_bytes(), " bytes of KV cache (prompt ", st.prefix_len, " tokens + ",
              st.req->params.max_new_tokens, " new), more than the budget of ", options_.kv_budget_bytes,
              " bytes (--kv_budget_mb)",
              held > 0 ? str(" leaves next to ", held * block_bytes(), " bytes of cached prefixes") : "");
  }
  if (N == 0) return {};
  reserve_blocks(cache_->used_blocks() + workload_blocks);
  stats_.kv_pool_bytes = cache_->pool_bytes();
  auto results = Scheduler(ctx, requests, states, on_done).run();
  stats_.total_s = seconds_since(t_start);
  return results;
}

}  // namespace ctm::engine
