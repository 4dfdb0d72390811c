// Batched sampling on a Transformer: continuous batching over a shared-prefix KV cache. Each request's prompt
// is prefilled once and its keys/values are shared by its n samples; finished samples leave the batch and
// waiting ones take their slots; the KV pool is sized once from a byte budget and a sample enters the batch
// only when its worst case (max_new_tokens) fits, so the engine never needs more memory than the budget and
// never preempts. Every sample draws from its own generator seeded with mix_seed(seed, request id, sample
// index): what a request produces does not depend on the other requests, the batch size or the rank count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ctm/model/transformer.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::engine {

// The most samples one request may ask for (its per-sample state is allocated when it starts).
constexpr int64_t kMaxSamplesPerRequest = int64_t{1} << 16;

struct SamplingParams {
  int64_t n = 1;
  double temperature = 0.0;  // < kGreedyTemperature: greedy
  double top_p = 1.0;
  int64_t max_new_tokens = 1024;
  std::vector<std::string> stop;  // matched on the streamed text; the completion excludes the stop string
  bool ignore_eos = false;
};

struct Request {
  int64_t id = 0;  // seeds the samples (with seed); need not be unique, but equal ids draw equal streams
  std::vector<int32_t> prompt_ids;
  SamplingParams params;
  uint64_t seed = 42;
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
  int64_t prefill_tokens = 0, generated_tokens = 0, decode_steps = 0, decode_slot_steps = 0;
  double prefill_s = 0, decode_s = 0, sample_s = 0, total_s = 0;
  int64_t kv_pool_bytes = 0;       // what was allocated (<= budget)
  int64_t peak_kv_used_bytes = 0;  // blocks in use at the peak
  int64_t max_active = 0;          // largest decode batch
  bool stopped = false;            // stopped on request before every request was started
};

class Engine {
 public:
  // The model and tokenizer must outlive the engine.
  Engine(model::Transformer& model, const text::Tokenizer& tokenizer, EngineOptions options = {});
  // Without a tokenizer: token ids only (empty texts, no stop strings), e.g. for benchmarks on random models.
  Engine(model::Transformer& model, const text::Tokenizer* tokenizer, EngineOptions options = {});

  // Runs every request; results in request order. on_done (optional) is called as each request finishes.
  std::vector<RequestOutput> generate(const std::vector<Request>& requests,
                                      const std::function<void(const RequestOutput&)>& on_done = {});

  const EngineStats& stats() const { return stats_; }  // of the last generate()
  const EngineOptions& options() const { return options_; }

 private:
  model::Transformer& model_;
  const text::Tokenizer* tokenizer_;  // may be null
  EngineOptions options_;
  EngineStats stats_;
};

}  // namespace ctm::engine
