#include "scheduler.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

#include "ctm/core/clock.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/engine/batch_sampler.hpp"
#include "ctm/engine/sampler.hpp"
#include "ctm/engine/stop.hpp"

namespace ctm::engine {
namespace {

using Clock = SteadyClock;

// The uniform of a sample's next draw, from its own generator; greedy draws take none, so a sample's stream
// is the same whichever path (CPU or device) draws its tokens.
double next_uniform(SampleState& s) {
  return s.req->req->params.temperature < kGreedyTemperature ? 0.0 : s.rng.uniform();
}

int64_t blocks_for(int64_t tokens, int64_t block_size) {
  return (tokens + block_size - 1) / block_size;
}

// How the prompt of a request started from a cached prefix is built (see PromptPlan).
PromptPlan plan_from_prefix(const Request& r, int64_t block_size) {
  const CachedPrefix& prefix = *r.prefix;
  const int64_t L = r.prefix_len;
  PromptPlan plan;
  plan.start = L;
  plan.extra = r.prompt_ids;
  if (plan.extra.empty()) {
    if (prefix.has_logits(L - 1)) {  // everything is cached, the first draw's logits included
      plan.shared_blocks = blocks_for(L, block_size);
      plan.first_logits = prefix.logits(L - 1);
      return plan;
    }
    plan.start = L - 1;  // no logits kept there: run the cut's last token again
    plan.extra = {prefix.ids()[L - 1]};
  }
  // Whole blocks before the cut are shared; a partly used one is copied into the request's own first block,
  // so the extra tokens never write into the cached prefix's blocks.
  plan.shared_blocks = plan.start / block_size;
  plan.own_blocks = blocks_for(plan.start % block_size + static_cast<int64_t>(plan.extra.size()), block_size);
  return plan;
}

}  // namespace

void validate_request(const Request& r, int64_t index, const SchedulerContext& ctx, RequestState& st) {
  const auto& p = r.params;
  const std::string where = str("request ", index, " (id ", r.id, ")");
  CTM_CHECK(r.first_sample >= 0 && r.first_sample <= (int64_t{1} << 40), where,
            ": first_sample must be in [0, 2^40] (got ", r.first_sample, ")");
  CTM_CHECK(p.n >= 1 && p.n <= kMaxSamplesPerRequest, where, ": n must be in [1, ", kMaxSamplesPerRequest,
            "] (got ", p.n, ")");
  CTM_CHECK(p.max_new_tokens >= 1, where, ": max_new_tokens must be >= 1 (got ", p.max_new_tokens, ")");
  CTM_CHECK(p.temperature >= 0, where, ": temperature must be >= 0 (got ", p.temperature, ")");
  CTM_CHECK(p.top_p > 0 && p.top_p <= 1, where, ": top_p must be in (0, 1] (got ", p.top_p, ")");
  CTM_CHECK(ctx.tokenizer || p.stop.empty(), where, ": stop strings need a tokenizer");
  std::vector<int32_t> forbidden = p.forbid_first_tokens;
  for (int32_t id : forbidden)
    CTM_CHECK(id >= 0 && id < ctx.vocab, where, ": forbidden token ", id, " outside the vocabulary of ",
              ctx.vocab);
  std::sort(forbidden.begin(), forbidden.end());
  CTM_CHECK(std::unique(forbidden.begin(), forbidden.end()) - forbidden.begin() < ctx.vocab, where,
            ": every token of the vocabulary is forbidden at the first draw");
  const int64_t bs = ctx.options.block_size;
  if (r.prefix) {
    CTM_CHECK(r.prefix->cache() == &ctx.cache, where, ": its cached prefix belongs to another engine");
    CTM_CHECK(r.prefix_len >= 1 && r.prefix_len <= r.prefix->size(), where, ": cut ", r.prefix_len,
              " outside the cached prefix of ", r.prefix->size(), " tokens");
    st.plan = plan_from_prefix(r, bs);
  } else {
    CTM_CHECK(r.prefix_len == 0, where, ": prefix_len ", r.prefix_len, " without a cached prefix");
    CTM_CHECK(!r.prompt_ids.empty(), where, ": empty prompt");
    st.plan.extra = r.prompt_ids;
    st.plan.own_blocks = blocks_for(static_cast<int64_t>(r.prompt_ids.size()), bs);
  }
  const int64_t P = r.prefix_len + static_cast<int64_t>(r.prompt_ids.size());
  CTM_CHECK(P < ctx.max_pos, where, ": prompt of ", P, " tokens does not fit the model's ", ctx.max_pos,
            " positions");
  for (int32_t id : r.prompt_ids)
    CTM_CHECK(id >= 0 && id < ctx.model_vocab, where, ": token id ", id, " outside the vocabulary of ",
              ctx.model_vocab);
  st.req = &r;
  st.index = index;
  st.prefix_len = P;
  // A sample's keys/values: every generated token but the last, and never past the last position.
  st.suffix_blocks = blocks_for(std::min(p.max_new_tokens - 1, ctx.max_pos - P), bs);
}

SampleState::SampleState(RequestState* r, int64_t i, uint64_t seed, const text::Tokenizer* tok)
    : req(r), index(i), rng(seed) {
  if (tok) decoder = std::make_unique<text::IncrementalDecoder>(*tok);
}

Scheduler::Scheduler(SchedulerContext ctx, const std::vector<Request>& requests,
                     std::vector<RequestState>& states,
                     const std::function<void(const RequestOutput&)>& on_done)
    : ctx_(ctx),
      requests_(requests),
      states_(states),
      on_done_(on_done),
      results_(requests.size()),
      progress_(ctx.options.progress_label, static_cast<int64_t>(requests.size()), ctx.options.progress),
      held_(ctx.cache.used_blocks()) {}

Scheduler::~Scheduler() {
  for (RequestState& st : states_) {
    for (auto& s : st.samples) ctx_.cache.release(s->suffix);
    ctx_.cache.release(st.prefix);
  }
}

std::vector<RequestOutput> Scheduler::run() {
  const int64_t N = static_cast<int64_t>(requests_.size());
  while (done_ < N) {
    admit();
    peak_used_ = std::max(peak_used_, ctx_.cache.used_blocks());
    if (active_.empty()) {
      CTM_CHECK(done_ == N || stopping(), "engine: no progress possible (internal error: nothing active, ",
                N - done_, " requests left)");
      break;
    }
    ctx_.stats.max_active = std::max<int64_t>(ctx_.stats.max_active, active_.size());
    step();
  }
  progress_.finish();
  ctx_.stats.peak_kv_used_bytes = peak_used_ * ctx_.block_bytes;
  return std::move(results_);
}

void Scheduler::admit() {
  const int64_t N = static_cast<int64_t>(requests_.size());
  while (static_cast<int64_t>(active_.size()) < ctx_.options.max_batch) {
    if (!ready_.empty()) {  // waiting samples first, then new requests
      SampleState* s = ready_.front();
      if (!ctx_.cache.allocate(s->req->suffix_blocks, s->suffix)) break;
      ready_.pop_front();
      active_.push_back(s);
    } else if (next_request_ < N && !stopping()) {
      if (!open_request(states_[next_request_])) break;
      ++next_request_;
    } else {
      break;
    }
  }
}

// SIGTERM (Slurm's time limit) or SIGINT: the requests already started are finished (their samples hold KV
// blocks and partial text), no new one is opened; the task keeps what on_done delivered.
bool Scheduler::stopping() {
  auto& stats = ctx_.stats;
  if (ctx_.options.stop_on_request && !stats.stopped && stop_requested())
    stats.stopped = next_request_ < static_cast<int64_t>(requests_.size());
  return stats.stopped;
}

bool Scheduler::open_request(RequestState& st) {
  const auto& r = *st.req;
  const int64_t need = st.plan.own_blocks + st.suffix_blocks;
  assert(need <= ctx_.cache.num_blocks() - held_);  // generate() checked every request against the budget
  if (ctx_.cache.free_blocks() < need) return false;
  const auto t0 = Clock::now();
  torch::Tensor logits;
  build_prompt(st, logits);
  const float* first = st.plan.first_logits ? st.plan.first_logits : logits.data_ptr<float>();
  ctx_.stats.prefill_s += seconds_since(t0);
  ++ctx_.stats.requests;
  st.remaining = r.params.n;
  for (int64_t j = 0; j < r.params.n; ++j)
    st.samples.push_back(
        std::make_unique<SampleState>(&st, j, mix_seed(r.seed, r.id, r.first_sample + j), ctx_.tokenizer));
  ctx_.stats.samples += r.params.n;
  std::vector<SampleState*> fresh;
  for (auto& s : st.samples) fresh.push_back(s.get());
  for (SampleState* s : fresh) {
    const int32_t token = draw(*s, first, /*first=*/true);
    ++ctx_.stats.generated_tokens;
    progress_.advance(0, 1);
    if (!accept(*s, token)) ready_.push_back(s);
  }
  return true;
}

void Scheduler::build_prompt(RequestState& st, torch::Tensor& logits) {
  const PromptPlan& plan = st.plan;
  SharedPrefixCache& cache = ctx_.cache;
  if (st.req->prefix) cache.share(st.req->prefix->blocks(), plan.shared_blocks, st.prefix);
  const bool fits = cache.allocate(plan.own_blocks, st.prefix);
  assert(fits);
  (void)fits;
  ctx_.stats.reused_tokens += plan.start;
  if (plan.extra.empty()) return;
  const int64_t partial = plan.start % cache.block_size();
  if (partial > 0)
    cache.copy_tokens(st.req->prefix->blocks()[plan.shared_blocks], st.prefix[plan.shared_blocks], partial);
  const int64_t E = static_cast<int64_t>(plan.extra.size());
  logits = ctx_.runner.extend(cache, st.prefix, plan.start, plan.extra.data(), E, E - 1);
  ctx_.stats.prefill_tokens += E;
}

int32_t Scheduler::draw(SampleState& s, const float* logits, bool first) {
  static const std::vector<int32_t> none;
  const auto& p = s.req->req->params;
  return sample_token(logits, ctx_.vocab, p.temperature, p.top_p, next_uniform(s),
                      first ? p.forbid_first_tokens : none);
}

std::vector<int32_t> Scheduler::draw_step(const torch::Tensor& logits) {
  const int64_t S = static_cast<int64_t>(active_.size());
  if (!logits.device().is_cpu()) {  // on the device: each sample's uniform goes there, its token comes back
    BatchDraw batch;
    for (SampleState* s : active_) {
      const auto& p = s->req->req->params;
      batch.temperature.push_back(p.temperature);
      batch.top_p.push_back(p.top_p);
      batch.u.push_back(next_uniform(*s));
    }
    return sample_tokens(logits.narrow(1, 0, ctx_.vocab), batch);
  }
  // On the CPU: in parallel, each from its own sample's generator.
  const float* lp = logits.data_ptr<float>();
  const int64_t V = logits.size(1);
  std::vector<int32_t> tokens(S);
  parallel_ranges(S, 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) tokens[i] = draw(*active_[i], lp + i * V, /*first=*/false);
  });
  return tokens;
}

bool Scheduler::accept(SampleState& s, int32_t token) {
  const auto& p = s.req->req->params;
  s.out.token_ids.push_back(token);
  const int64_t generated = static_cast<int64_t>(s.out.token_ids.size());
  const auto& eos = ctx_.options.eos_ids;
  bool finished = false;
  if (!p.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
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
    } else if (generated >= p.max_new_tokens || s.req->prefix_len + generated > ctx_.max_pos) {
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
    ctx_.cache.release(s.suffix);
    if (--s.req->remaining == 0) finish_request(*s.req);
  }
  return finished;
}

void Scheduler::step() {
  const int64_t S = static_cast<int64_t>(active_.size());
  const auto t0 = Clock::now();
  std::vector<int64_t> ids(S), positions(S);
  std::vector<SharedPrefixCache::Slot> slots(S);
  for (int64_t i = 0; i < S; ++i) {
    const SampleState& s = *active_[i];
    ids[i] = s.out.token_ids.back();
    positions[i] = s.req->prefix_len + s.suffix_len;
    slots[i] = {&s.req->prefix, s.req->prefix_len, &s.suffix, s.suffix_len};
  }
  const auto logits = ctx_.runner.decode(ctx_.cache, std::move(slots), ids, positions);  // [S, V]
  ctx_.stats.decode_s += seconds_since(t0);
  ++ctx_.stats.decode_steps;
  ctx_.stats.decode_slot_steps += S;

  const auto t1 = Clock::now();
  const std::vector<int32_t> tokens = draw_step(logits);
  std::vector<SampleState*> still;
  still.reserve(S);
  for (int64_t i = 0; i < S; ++i) {
    SampleState& s = *active_[i];
    ++s.suffix_len;
    if (!accept(s, tokens[i])) still.push_back(&s);
  }
  active_.swap(still);
  ctx_.stats.generated_tokens += S;
  progress_.advance(0, S);
  ctx_.stats.sample_s += seconds_since(t1);
}

void Scheduler::finish_request(RequestState& st) {
  ctx_.cache.release(st.prefix);
  RequestOutput& out = results_[st.index];
  out.index = st.index;
  out.id = st.req->id;
  for (auto& s : st.samples) out.completions.push_back(std::move(s->out));
  st.samples.clear();
  ++done_;
  progress_.advance(1, 0);
  if (on_done_) on_done_(out);
}

}  // namespace ctm::engine
