// The engine's scheduler (private to it): admission, KV block accounting, the decode loop and stopping, for
// one generate() call. The forward (ModelRunner) and the sampler stay outside.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "ctm/core/progress.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "model_runner.hpp"

namespace ctm::engine {

struct RequestState;

// One sample of a request: its generator, its text as it streams, its own KV blocks.
struct SampleState {
  SampleState(RequestState* r, int64_t i, uint64_t seed, const text::Tokenizer* tok);
  RequestState* req;
  int64_t index;
  Rng rng;
  std::unique_ptr<text::IncrementalDecoder> decoder;  // null without a tokenizer
  Completion out;
  BlockList suffix;
  int64_t suffix_len = 0;  // tokens of this sample whose keys/values are in the cache
};

// How a request's prompt is built: `shared` blocks of a cached prefix by reference, then `extra` tokens
// prefilled into its own blocks after position `start` (the first start % block_size of which are a copy of
// the cached prefix's partly used block).
struct PromptPlan {
  int64_t shared_blocks = 0;
  int64_t start = 0;                    // tokens read from the cached prefix
  std::vector<int32_t> extra;           // tokens run through the model
  int64_t own_blocks = 0;               // fresh blocks the prompt takes
  const float* first_logits = nullptr;  // the cached prefix's logits when extra is empty
};

struct RequestState {
  const Request* req = nullptr;
  int64_t index = 0;
  PromptPlan plan;
  BlockList prefix;
  int64_t prefix_len = 0;     // prompt tokens
  int64_t suffix_blocks = 0;  // reserved per sample: its worst case
  int64_t remaining = 0;      // samples not finished
  std::vector<std::unique_ptr<SampleState>> samples;
};

struct SchedulerContext {
  ModelRunner& runner;
  SharedPrefixCache& cache;
  const text::Tokenizer* tokenizer;
  const EngineOptions& options;
  int64_t vocab;        // draws in [0, vocab)
  int64_t model_vocab;  // prompt token ids in [0, model_vocab)
  int64_t max_pos;      // the model's positions
  int64_t block_bytes;  // KV bytes of one block
  EngineStats& stats;
};

class Scheduler {
 public:
  // The requests must have passed validate_request (plans made).
  Scheduler(SchedulerContext ctx, const std::vector<Request>& requests, std::vector<RequestState>& states,
            const std::function<void(const RequestOutput&)>& on_done);
  ~Scheduler();  // gives back the blocks of whatever is unfinished (an exception)
  std::vector<RequestOutput> run();

 private:
  void admit();     // fills the free decode slots
  bool stopping();  // a stop was requested before every request was opened (sets stats.stopped)
  bool open_request(
      RequestState& st);  // prefills the prompt and draws first tokens; false if it does not fit
  void build_prompt(RequestState& st, torch::Tensor& logits);
  void step();  // one decode step over the active samples
  int32_t draw(SampleState& s, const float* logits, bool first);
  // The next token of every active sample from a decode step's logits [S, V] (CPU or device).
  std::vector<int32_t> draw_step(const torch::Tensor& logits);
  bool accept(SampleState& s, int32_t token);  // true when the sample is finished
  void finish_request(RequestState& st);

  SchedulerContext ctx_;
  const std::vector<Request>& requests_;
  std::vector<RequestState>& states_;
  const std::function<void(const RequestOutput&)>& on_done_;
  std::vector<RequestOutput> results_;
  Progress progress_;
  std::deque<SampleState*> ready_;    // sampled their first token, waiting for a slot
  std::vector<SampleState*> active_;  // in the decode batch
  int64_t held_;  // blocks held when the call began (cached prefixes): not available to its requests
  int64_t next_request_ = 0, done_ = 0, peak_used_ = 0;
};

// Checks a request (ctm::Error naming it) and plans its prompt; sets st.req, index, plan, prefix_len,
// suffix_blocks.
void validate_request(const Request& r, int64_t index, const SchedulerContext& ctx, RequestState& st);

}  // namespace ctm::engine
