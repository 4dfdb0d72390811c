// Batched sampling on a Transformer: continuous batching over a reference-counted, shared-prefix KV cache.
// Each request's prompt is prefilled once and its keys/values are shared by its n samples; finished samples
// leave the batch and waiting ones take their slots. A token sequence can also be prefilled once as a cached
// prefix (cache_prefix) and any number of requests started from cuts of it, sharing its blocks, so a
// trajectory's thousands of rollouts never prefill it again. The KV pool never exceeds the byte budget; a
// sample enters the batch only when its worst case (max_new_tokens) fits, so the engine never preempts. Every
// sample draws from its own generator seeded with mix_seed(seed, request id, sample index): what a request
// produces does not depend on the other requests, the batch size, the rank count, or whether its prompt came
// from a cached prefix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctm/engine/block_pool.hpp"
#include "ctm/model/transformer.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::engine {

class SharedPrefixCache;
class ModelRunner;

// The most samples one request may ask for (its per-sample state is allocated when it starts).
constexpr int64_t kMaxSamplesPerRequest = int64_t{1} << 16;

struct SamplingParams {
  int64_t n = 1;
  double temperature = 0.0;  // < kGreedyTemperature: greedy
  double top_p = 1.0;
  int64_t max_new_tokens = 1024;
  std::vector<std::string> stop;  // matched on the streamed text; the completion excludes the stop string
  bool ignore_eos = false;
  // Tokens the first draw may not produce (the rollout task's alternatives "without" the original token):
  // their probability is set to 0 and the others renormalised, then temperature and top_p apply as usual
  // (equivalently: their logits are -inf). Later draws are unaffected; at temperature 0 the first token is
  // the most likely allowed one. Forbidding every token of the vocabulary is an error.
  std::vector<int32_t> forbid_first_tokens;
};

// A token sequence prefilled once into the engine's KV pool (Engine::cache_prefix). Its blocks stay allocated
// while a handle or a request started from it is alive and go back to the pool with the last one. It keeps
// the next-token logits of the positions from logits_from() on, so a request that starts at a cut L (>
// logits_from()) and adds no tokens draws its first token from them, without a forward.
class CachedPrefix {
 public:
  CachedPrefix(std::shared_ptr<SharedPrefixCache> cache, BlockList blocks, std::vector<int32_t> ids,
               int64_t logits_from, int64_t vocab, std::vector<float> logits);
  ~CachedPrefix();
  CachedPrefix(const CachedPrefix&) = delete;
  CachedPrefix& operator=(const CachedPrefix&) = delete;

  const std::vector<int32_t>& ids() const { return ids_; }
  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t logits_from() const { return logits_from_; }
  int64_t vocab() const { return vocab_; }  // floats per row of logits
  bool has_logits(int64_t pos) const { return pos >= logits_from_ && pos < size(); }
  // The model's float32 logits for the token after ids()[pos] (pos in [logits_from(), size())).
  const float* logits(int64_t pos) const;
  const BlockList& blocks() const { return blocks_; }
  const SharedPrefixCache* cache() const { return cache_.get(); }

 private:
  std::shared_ptr<SharedPrefixCache> cache_;
  BlockList blocks_;
  std::vector<int32_t> ids_;
  int64_t logits_from_, vocab_;
  std::vector<float> logits_;  // [size() - logits_from, vocab]
};
using PrefixHandle = std::shared_ptr<const CachedPrefix>;

struct Request {
  int64_t id = 0;  // seeds the samples (with seed); need not be unique, but equal ids draw equal streams
  // Optional: the prompt starts with prefix->ids()[0 .. prefix_len) (1 <= prefix_len <= prefix->size()), read
  // from the cached prefix's blocks; prompt_ids then holds only the tokens after the cut (may be empty). The
  // samples are those of the same request with the whole prompt in prompt_ids.
  PrefixHandle prefix;
  int64_t prefix_len = 0;
  std::vector<int32_t> prompt_ids;
  SamplingParams params;
  uint64_t seed = 42;
  // The samples are numbered first_sample .. first_sample + n - 1 and sample k draws from mix_seed(seed, id,
  // k): a request for samples k .. n-1 continues one for 0 .. k-1 (the same samples as one request for n).
  int64_t first_sample = 0;
};

enum class FinishReason { Stop, Eos, Length };
const char* finish_reason_name(FinishReason r);  // "stop" | "eos" | "length"

struct Completion {
  std::string text;  // decoded, without the stop string or EOS
  std::vector<int32_t>
      token_ids;  // every sampled token, as vLLM: the EOS or the token completing a stop included
  FinishReason finish = FinishReason::Length;
};

struct RequestOutput {
  int64_t index = 0;  // position of the request in the input vector
  int64_t id = 0;
  std::vector<Completion> completions;  // n, in sample order
};

struct EngineOptions {
  int64_t max_batch = 64;                      // decode slots
  int64_t kv_budget_bytes = int64_t{4} << 30;  // the KV pool never exceeds this
  int64_t block_size = 16;                     // tokens per KV block
  bool progress = true;
  // Once ctm::stop_requested() (SIGTERM/SIGINT): open no new request, finish the ones already started (their
  // on_done runs as usual) and return; stats().stopped tells, and requests never started have no completions.
  bool stop_on_request = true;
  std::string progress_label = "generate";
  std::vector<int32_t> eos_ids;  // empty: the tokenizer's EOS and the model config's eos_token_id(s)
};

struct EngineStats {
  int64_t requests = 0, samples = 0;
  int64_t prefill_tokens = 0;  // tokens run through the model before the first draw
  int64_t reused_tokens = 0;   // prompt tokens read from cached prefixes instead
  int64_t generated_tokens = 0, decode_steps = 0, decode_slot_steps = 0;
  double prefill_s = 0, decode_s = 0, sample_s = 0, total_s = 0;
  int64_t kv_pool_bytes = 0;       // what is allocated (<= budget)
  int64_t peak_kv_used_bytes = 0;  // blocks in use at the peak (a shared block counted once)
  int64_t max_active = 0;          // largest decode batch
  bool stopped = false;            // stopped on request before every request was started
};

class Engine {
 public:
  // The model and tokenizer must outlive the engine.
  Engine(model::Transformer& model, const text::Tokenizer& tokenizer, EngineOptions options = {});
  // Without a tokenizer: token ids only (empty texts, no stop strings), e.g. for benchmarks on random models.
  Engine(model::Transformer& model, const text::Tokenizer* tokenizer, EngineOptions options = {});
  ~Engine();

  // Runs every request; results in request order. on_done (optional) is called as each request finishes.
  std::vector<RequestOutput> generate(const std::vector<Request>& requests,
                                      const std::function<void(const RequestOutput&)>& on_done = {});

  // Prefills ids once into KV blocks that stay allocated until the handle and every request started from it
  // are gone, keeping the next-token logits of positions [logits_from, ids.size()). The blocks count against
  // the KV budget while held; ctm::Error if the budget cannot hold them next to the other held blocks.
  PrefixHandle cache_prefix(const std::vector<int32_t>& ids, int64_t logits_from = 0);

  const EngineStats& stats() const { return stats_; }  // of the last generate()
  const EngineOptions& options() const { return options_; }
  // KV blocks: held now (by cached prefixes; 0 between generate() calls without them), allocated, and the
  // most the budget allows.
  int64_t kv_blocks_in_use() const;
  int64_t kv_blocks_allocated() const;
  int64_t kv_budget_blocks() const;
  int64_t vocab() const { return vocab_; }  // token ids the sampler draws from: [0, vocab)

 private:
  // Grows the pool to hold `blocks` (capped by the budget) and returns it.
  SharedPrefixCache& reserve_blocks(int64_t blocks);
  int64_t block_bytes() const;

  model::Transformer& model_;
  const text::Tokenizer* tokenizer_;  // may be null
  EngineOptions options_;
  EngineStats stats_;
  int64_t vocab_;
  std::shared_ptr<SharedPrefixCache> cache_;  // created on first use; shared with the cached prefixes
  std::unique_ptr<ModelRunner> runner_;
};

}  // namespace ctm::engine
