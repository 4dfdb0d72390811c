#include "ctm/engine/engine.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>

#include "ctm/core/error.hpp"
#include "ctm/core/progress.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "ctm/engine/sampler.hpp"
#include "ctm/engine/stop.hpp"

namespace ctm::engine {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct RequestState;

// One sample of a request: its generator, its text as it streams, its own KV blocks.
struct SampleState {
  SampleState(RequestState* r, int64_t i, uint64_t seed, const text::Tokenizer* tok)
      : req(r), index(i), rng(seed) {
    if (tok) decoder = std::make_unique<text::IncrementalDecoder>(*tok);
  }
  RequestState* req;
  int64_t index;
  Rng rng;
  std::unique_ptr<text::IncrementalDecoder> decoder;  // null without a tokenizer
  Completion out;
  BlockList suffix;
  int64_t suffix_len = 0;  // tokens of this sample whose keys/values are in the cache
  bool finished = false;
};

struct RequestState {
  const Request* req = nullptr;
  int64_t index = 0;
  BlockList prefix;
  int64_t prefix_len = 0;
  int64_t suffix_blocks = 0;  // reserved per sample: its worst case
  int64_t remaining = 0;      // samples not finished
  std::vector<std::unique_ptr<SampleState>> samples;
};

}  // namespace

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

Engine::Engine(model::Transformer& model, const text::Tokenizer& tokenizer, EngineOptions options)
    : Engine(model, &tokenizer, std::move(options)) {}

Engine::Engine(model::Transformer& model, const text::Tokenizer* tokenizer, EngineOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)) {
  CTM_CHECK(options_.max_batch > 0, "engine: max_batch must be positive (got ", options_.max_batch, ")");
  CTM_CHECK(options_.block_size > 0, "engine: block_size must be positive (got ", options_.block_size, ")");
  if (options_.eos_ids.empty()) {
    if (tokenizer_)
      if (auto e = tokenizer_->eos_id()) options_.eos_ids.push_back(*e);
    for (int64_t e : model_.config().eos_token_ids)
      if (std::find(options_.eos_ids.begin(), options_.eos_ids.end(), e) == options_.eos_ids.end())
        options_.eos_ids.push_back(static_cast<int32_t>(e));
  }
}

std::vector<RequestOutput> Engine::generate(const std::vector<Request>& requests,
                                            const std::function<void(const RequestOutput&)>& on_done) {
  c10::InferenceMode inference;
  const auto t_start = Clock::now();
  stats_ = EngineStats{};
  const auto& cfg = model_.config();
  const int64_t max_pos = cfg.max_position_embeddings;
  const int64_t vocab =
      tokenizer_ ? std::min<int64_t>(cfg.vocab_size, tokenizer_->vocab_size()) : cfg.vocab_size;
  const int64_t N = static_cast<int64_t>(requests.size());
  const int64_t bs = options_.block_size;
  auto blocks_for = [&](int64_t tokens) { return (tokens + bs - 1) / bs; };

  // Validate every request up front (an error names the request) and size the pool: the budget, or less when
  // the whole workload needs less.
  std::vector<RequestState> states(N);
  int64_t workload_blocks = 0;
  for (int64_t i = 0; i < N; ++i) {
    const Request& r = requests[i];
    const auto& p = r.params;
    const std::string where = str("request ", i, " (id ", r.id, ")");
    CTM_CHECK(!r.prompt_ids.empty(), where, ": empty prompt");
    CTM_CHECK(p.n >= 1 && p.n <= kMaxSamplesPerRequest, where, ": n must be in [1, ", kMaxSamplesPerRequest,
              "] (got ", p.n, ")");
    CTM_CHECK(p.max_new_tokens >= 1, where, ": max_new_tokens must be >= 1 (got ", p.max_new_tokens, ")");
    CTM_CHECK(p.temperature >= 0, where, ": temperature must be >= 0 (got ", p.temperature, ")");
    CTM_CHECK(p.top_p > 0 && p.top_p <= 1, where, ": top_p must be in (0, 1] (got ", p.top_p, ")");
    CTM_CHECK(tokenizer_ || p.stop.empty(), where, ": stop strings need a tokenizer");
    const int64_t P = static_cast<int64_t>(r.prompt_ids.size());
    CTM_CHECK(P < max_pos, where, ": prompt of ", P, " tokens does not fit the model's ", max_pos,
              " positions");
    for (int32_t id : r.prompt_ids)
      CTM_CHECK(id >= 0 && id < cfg.vocab_size, where, ": token id ", id, " outside the vocabulary of ",
                cfg.vocab_size);
    RequestState& st = states[i];
    st.req = &r;
    st.index = i;
    st.prefix_len = P;
    // A sample's keys/values: every generated token but the last, and never past the last position.
    st.suffix_blocks = blocks_for(std::min(p.max_new_tokens - 1, max_pos - P));
    workload_blocks += blocks_for(P) + p.n * st.suffix_blocks;
  }
  const int64_t block_bytes = bs * SharedPrefixCache::bytes_per_token(cfg, model_.dtype());
  const int64_t budget_blocks = options_.kv_budget_bytes / block_bytes;
  CTM_CHECK(budget_blocks >= 1, "engine: KV budget of ", options_.kv_budget_bytes,
            " bytes is below one block (", block_bytes, " bytes)");
  // Before any work: every request must fit the budget on its own (its prompt + one sample's worst case).
  for (int64_t i = 0; i < N; ++i) {
    const int64_t need = blocks_for(states[i].prefix_len) + states[i].suffix_blocks;
    CTM_CHECK(need <= budget_blocks, "engine: request ", i, " (id ", requests[i].id, ") needs ",
              need * block_bytes, " bytes of KV cache (prompt ", states[i].prefix_len, " tokens + ",
              requests[i].params.max_new_tokens, " new), more than the budget of ", options_.kv_budget_bytes,
              " bytes (--kv_budget_mb)");
  }
  if (N == 0) return {};
  SharedPrefixCache cache(cfg, std::max<int64_t>(1, std::min(budget_blocks, workload_blocks)), bs,
                          model_.device(), model_.dtype());
  stats_.kv_pool_bytes = cache.pool_bytes();

  std::vector<RequestOutput> results(N);
  Progress progress(options_.progress_label, N, options_.progress);
  std::deque<SampleState*> ready;    // sampled their first token, waiting for a slot
  std::vector<SampleState*> active;  // in the decode batch
  int64_t next_request = 0, done = 0;

  auto finish_request = [&](RequestState& st) {
    cache.release(st.prefix);
    RequestOutput& out = results[st.index];
    out.index = st.index;
    out.id = st.req->id;
    for (auto& s : st.samples) out.completions.push_back(std::move(s->out));
    st.samples.clear();
    ++done;
    progress.advance(1, 0);
    if (on_done) on_done(out);
  };
  // Appends a sampled token; true when the sample is finished.
  auto accept = [&](SampleState& s, int32_t token) {
    const auto& p = s.req->req->params;
    s.out.token_ids.push_back(token);
    const int64_t generated = static_cast<int64_t>(s.out.token_ids.size());
    bool finished = false;
    if (!p.ignore_eos &&
        std::find(options_.eos_ids.begin(), options_.eos_ids.end(), token) != options_.eos_ids.end()) {
      if (s.decoder) s.out.text += s.decoder->flush();
      s.out.finish = FinishReason::Eos;
      finished = true;
    } else {
      const std::string piece = s.decoder ? s.decoder->push(token) : std::string();
      s.out.text += piece;
      if (auto hit = find_stop(s.out.text, piece.size(), p.stop)) {
        s.out.text.resize(hit->pos);
        s.out.finish = FinishReason::Stop;
        finished = true;
      } else if (generated >= p.max_new_tokens || s.req->prefix_len + generated > max_pos) {
        const std::string rest = s.decoder ? s.decoder->flush() : std::string();
        s.out.text += rest;
        if (auto hit2 = find_stop(s.out.text, rest.size(), p.stop)) {
          s.out.text.resize(hit2->pos);
          s.out.finish = FinishReason::Stop;
        } else {
          s.out.finish = FinishReason::Length;
        }
        finished = true;
      }
    }
    if (finished) {
      s.finished = true;
      cache.release(s.suffix);
      if (--s.req->remaining == 0) finish_request(*s.req);
    }
    return finished;
  };
  auto draw = [&](SampleState& s, const float* logits) {
    const auto& p = s.req->req->params;
    const double u = p.temperature < kGreedyTemperature ? 0.0 : s.rng.uniform();
    return sample_token(logits, vocab, p.temperature, p.top_p, u);
  };

  // Prefills request i and samples the first token of each of its samples. False if it does not fit now.
  auto open_request = [&](RequestState& st) {
    const auto& r = *st.req;
    const int64_t P = st.prefix_len;
    const int64_t need = blocks_for(P) + st.suffix_blocks;
    CTM_CHECK(need <= cache.num_blocks(), "engine: request ", st.index, " (id ", r.id, ") needs ",
              need * block_bytes, " bytes of KV cache (prompt ", P, " tokens + ", r.params.max_new_tokens,
              " new), more than the budget of ", options_.kv_budget_bytes, " bytes");
    if (cache.free_blocks() < need) return false;
    cache.allocate(blocks_for(P), st.prefix);
    const auto t0 = Clock::now();
    const auto ids =
        torch::tensor(std::vector<int64_t>(r.prompt_ids.begin(), r.prompt_ids.end()), torch::kInt64)
            .view({1, P})
            .to(model_.device());
    const auto positions = torch::arange(P, torch::dtype(torch::kInt64).device(model_.device())).view({1, P});
    cache.begin_prefill(st.prefix);
    const auto hidden = model_.forward_hidden(ids, positions, cache);                  // [1, P, D]
    const auto logits = model_.logits(hidden[0][P - 1]).to(torch::kCPU).contiguous();  // [V]
    stats_.prefill_s += seconds_since(t0);
    stats_.prefill_tokens += P;
    ++stats_.requests;
    st.remaining = r.params.n;
    for (int64_t j = 0; j < r.params.n; ++j)
      st.samples.push_back(std::make_unique<SampleState>(&st, j, mix_seed(r.seed, r.id, j), tokenizer_));
    std::vector<SampleState*> fresh;
    for (auto& s : st.samples) fresh.push_back(s.get());
    stats_.samples += r.params.n;
    for (SampleState* s : fresh) {
      const int32_t token = draw(*s, logits.data_ptr<float>());
      ++stats_.generated_tokens;
      progress.advance(0, 1);
      if (!accept(*s, token)) ready.push_back(s);
    }
    return true;
  };

  // SIGTERM (Slurm's time limit) or SIGINT: the requests already started are finished (their samples hold
  // KV blocks and partial text), no new one is opened; the task keeps what on_done delivered.
  auto stopping = [&] {
    if (options_.stop_on_request && !stats_.stopped && stop_requested()) stats_.stopped = next_request < N;
    return stats_.stopped;
  };
  int64_t peak_used = 0;
  while (done < N) {
    // Fill the free slots: waiting samples first, then new requests.
    while (static_cast<int64_t>(active.size()) < options_.max_batch) {
      if (!ready.empty()) {
        SampleState* s = ready.front();
        if (!cache.allocate(s->req->suffix_blocks, s->suffix)) break;
        ready.pop_front();
        active.push_back(s);
      } else if (next_request < N && !stopping()) {
        if (!open_request(states[next_request])) break;
        ++next_request;
      } else {
        break;
      }
    }
    peak_used = std::max(peak_used, cache.num_blocks() - cache.free_blocks());
    if (active.empty()) {
      CTM_CHECK(done == N || stopping(), "engine: no progress possible (internal error: nothing active, ",
                N - done, " requests left)");
      break;
    }
    stats_.max_active = std::max<int64_t>(stats_.max_active, active.size());

    // One decode step over the batch.
    const int64_t S = static_cast<int64_t>(active.size());
    const auto t0 = Clock::now();
    std::vector<int64_t> ids(S), positions(S);
    std::vector<SharedPrefixCache::Slot> slots(S);
    for (int64_t i = 0; i < S; ++i) {
      const SampleState& s = *active[i];
      ids[i] = s.out.token_ids.back();
      positions[i] = s.req->prefix_len + s.suffix_len;
      slots[i] = {&s.req->prefix, s.req->prefix_len, &s.suffix, s.suffix_len};
    }
    cache.begin_decode(std::move(slots));
    const auto ids_t = torch::tensor(ids, torch::kInt64).view({S, 1}).to(model_.device());
    const auto pos_t = torch::tensor(positions, torch::kInt64).view({S, 1}).to(model_.device());
    const auto hidden = model_.forward_hidden(ids_t, pos_t, cache);  // [S, 1, D]
    const auto logits =
        model_.logits(hidden.view({S, hidden.size(2)})).to(torch::kCPU).contiguous();  // [S, V]
    stats_.decode_s += seconds_since(t0);
    ++stats_.decode_steps;
    stats_.decode_slot_steps += S;

    const auto t1 = Clock::now();
    const float* lp = logits.data_ptr<float>();
    const int64_t V = logits.size(1);
    // Draws in parallel (each from its own sample's generator), then the bookkeeping in order.
    std::vector<int32_t> tokens(S);
    parallel_ranges(S, 4, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) tokens[i] = draw(*active[i], lp + i * V);
    });
    std::vector<SampleState*> still;
    still.reserve(S);
    for (int64_t i = 0; i < S; ++i) {
      SampleState& s = *active[i];
      ++s.suffix_len;
      if (!accept(s, tokens[i])) still.push_back(&s);
    }
    active.swap(still);
    stats_.generated_tokens += S;
    progress.advance(0, S);
    stats_.sample_s += seconds_since(t1);
  }
  progress.finish();
  stats_.peak_kv_used_bytes = peak_used * block_bytes;
  stats_.total_s = seconds_since(t_start);
  return results;
}

}  // namespace ctm::engine
