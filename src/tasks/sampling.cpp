// ctm sampling (DESIGN.md §2 "Rollout sampling and critical tokens"): for the rejected
// response of each of the first --max_trajectories DPO pairs, tokenized as calculate_ce_score does (BOS +
// prompt + response as one text), rollouts from every response position:
//   with    (first response token .. second-to-last): the prefix up to and including token i, then
//           --rollouts_per_position continuations;
//   without (first .. last response token): the prefix before token i, then as many alternatives to token i
//           (its probability set to 0, the rest renormalised, then temperature and top-p), each continued.
// Each continuation is graded (prefix text + completion) against the pair's gold answers. The trajectory is
// prefilled once into the engine's KV cache and every rollout starts from a cut of it (ctm keeps the token
// prefix; the release decodes, strips and re-tokenises it). The critical token is the paper's rule on the
// *with* counts (data::critical_position). --search exhaustive rolls out from every position (the paper);
// --search adaptive only from the positions data::adaptive_critical_position asks about, and *without* only
// at the critical position (docs/rollouts.md "Adaptive search"). Trajectories are journaled as they finish
// (ResumableWork), split over the ranks, and written collectively to
// data/rollout_sampling/{model}/{dataset}.rollouts.h5 (DESIGN.md §5) with ….rollouts.stats.json beside it.
#include <cassert>
#include <chrono>
#include <iostream>
#include <limits>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/clock.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/data/critical.hpp"
#include "ctm/data/critical_search.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/data/selection.hpp"
#include "ctm/dist/h5_collective.hpp"
#include "ctm/dist/partition.hpp"
#include "ctm/engine/sampler.hpp"
#include "ctm/grade/grader.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/resumable.hpp"
#include "ctm/tasks/scored_pairs.hpp"

namespace ctm::tasks {

void add_sampling_options(po::options_description& desc) {
  add_engine_options(desc);
  // clang-format off
  desc.add_options()
    ("max_trajectories", po::value<int64_t>()->default_value(100), "the first N pairs of the DPO file (the paper: 100)")
    ("rollouts_per_position", po::value<int64_t>()->default_value(kPaperSamples), "continuations per prefix, with and without")
    ("grader", po::value<std::string>()->default_value("paper"), "paper | math")
    ("search", po::value<std::string>()->default_value("exhaustive"),
     "exhaustive (every position, the paper) | adaptive (rollouts only where they decide the critical token)")
    ("adaptive_window", po::value<int64_t>()->default_value(8),
     "adaptive: positions confirmed after the critical token, and scanned per batch")
    ("output", po::value<std::string>()->default_value(""),
     "HDF5 file (default: data/rollout_sampling/<model>/<dataset>.rollouts.h5)");
  // clang-format on
}

namespace {

struct Setup {
  data::DatasetKind kind;
  grade::GraderKind grader;
  engine::SamplingParams params;  // n = rollouts per position
  uint64_t seed = 42;
  bool adaptive = false;  // --search adaptive
  int64_t window = 8;     // --adaptive_window
};

// Rollouts a position's first wave makes in the adaptive search: enough to tell most G positions apart.
constexpr int64_t kFirstWave = 8;

// The question of a DPO prompt: the text after its last question prefix, up to the answer prefix.
std::string question_of(const std::string& prompt, data::DatasetKind kind) {
  const data::PromptFormat fmt = data::prompt_format(kind);
  const size_t q = prompt.rfind(fmt.question_prefix);
  if (q == std::string::npos) return prompt;
  const size_t begin = q + fmt.question_prefix.size();
  const size_t end = prompt.find(data::python_strip(fmt.answer_prefix), begin);
  return data::python_strip(prompt.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
}

struct Sampled {
  io::Trajectory t;
  int64_t generated = 0;
  int64_t rollouts = 0;  // made, a repeated first wave included
  bool complete = true;
};

// The graded rollouts of one trajectory: its tokens prefilled once, then any number of batches of requests
// from cuts of it, their counts (and the without alternatives) written into the trajectory.
class TrajectoryRollouts {
 public:
  TrajectoryRollouts(engine::Engine& eng, const text::Tokenizer& tok, const Setup& s, int64_t pair,
                     const TokenizedSide& side, const data::DpoPairText& text, Sampled& out)
      : eng_(eng),
        tok_(tok),
        s_(s),
        pair_(pair),
        ids_(side.ids),
        start_(side.response_start),
        text_(text),
        rules_(data::grading_rules(s.kind)),
        out_(out),
        alts_(ids_.size()),
        alt_ok_(ids_.size()),
        prefix_(eng.cache_prefix(ids_, start_ - 1)) {}

  // Rollouts first .. n-1 from each (position, without), added to those made before (first > 0: rollouts 0 ..
  // first-1 are in); false when the engine stopped before finishing them.
  bool run(const std::vector<std::pair<int64_t, bool>>& what, int64_t n, int64_t first = 0) {
    std::vector<engine::Request> requests;
    for (const auto& [i, without] : what) requests.push_back(request(i, without, n - first, first));
    const std::vector<engine::RequestOutput> results = eng_.generate(requests);
    for (size_t k = 0; k < results.size(); ++k) {
      if (results[k].completions.size() != static_cast<size_t>(n - first)) return false;  // not started
      record(what[k].first, what[k].second, results[k].completions, first);
    }
    return true;
  }

  // The alternatives' CSR index and the rule's critical position, once every rollout is in.
  void finish() {
    io::Trajectory& t = out_.t;
    t.alt_offsets.push_back(0);
    for (size_t i = 0; i < ids_.size(); ++i) {
      t.alt_token_ids.insert(t.alt_token_ids.end(), alts_[i].begin(), alts_[i].end());
      t.alt_correct.insert(t.alt_correct.end(), alt_ok_[i].begin(), alt_ok_[i].end());
      t.alt_offsets.push_back(static_cast<int64_t>(t.alt_token_ids.size()));
    }
    t.critical_position = data::critical_position(t.with_correct, t.with_total);
  }

 private:
  // Request ids are unique per (pair, position, kind), so every rollout is seeded by (seed, pair, position,
  // kind, sample index), whatever n: the first k samples of n are those of a request for k, and a request
  // from sample k on continues it.
  engine::Request request(int64_t i, bool without, int64_t n, int64_t first) const {
    engine::Request r;
    r.id = (pair_ << 32) | (i << 1) | (without ? 1 : 0);
    r.prefix = prefix_;
    r.prefix_len = without ? i : i + 1;
    r.params = s_.params;
    r.params.n = n;
    r.first_sample = first;
    if (without) r.params.forbid_first_tokens = {ids_[static_cast<size_t>(i)]};
    r.seed = s_.seed;
    return r;
  }

  void record(int64_t i, bool without, const std::vector<engine::Completion>& completions, int64_t first) {
    const auto u = static_cast<size_t>(i);
    const std::string head =
        tok_.decode(std::vector<int32_t>(ids_.begin() + start_, ids_.begin() + (without ? i : i + 1)));
    int16_t correct = 0;
    if (without && first == 0) {
      alts_[u].clear();
      alt_ok_[u].clear();
    }
    for (const engine::Completion& c : completions) {
      const bool ok = grade::grade(rules_, s_.grader, head + c.text, text_.answers).correct;
      correct += ok ? 1 : 0;
      out_.generated += static_cast<int64_t>(c.token_ids.size());
      if (without) {
        alts_[u].push_back(c.token_ids.empty() ? -1 : c.token_ids.front());
        alt_ok_[u].push_back(ok ? 1 : 0);
      }
    }
    out_.rollouts += static_cast<int64_t>(completions.size());
    io::Trajectory& t = out_.t;
    auto& total = (without ? t.without_total : t.with_total)[u];
    auto& correct_so_far = (without ? t.without_correct : t.with_correct)[u];
    correct_so_far = static_cast<int16_t>((first == 0 ? 0 : correct_so_far) + correct);
    total = static_cast<int16_t>((first == 0 ? 0 : total) + static_cast<int64_t>(completions.size()));
  }

  engine::Engine& eng_;
  const text::Tokenizer& tok_;
  const Setup& s_;
  const int64_t pair_;
  const std::vector<int32_t>& ids_;
  const int64_t start_;
  const data::DpoPairText& text_;
  const grade::Rules rules_;
  Sampled& out_;
  std::vector<std::vector<int32_t>> alts_;
  std::vector<std::vector<int8_t>> alt_ok_;
  const engine::PrefixHandle prefix_;
};

// Exhaustive: every with and without position, n rollouts each.
bool sample_exhaustive(TrajectoryRollouts& rollouts, const Setup& s, int64_t start, int64_t L) {
  std::vector<std::pair<int64_t, bool>> what;
  for (int64_t i = start; i < L; ++i) {
    if (i < L - 1) what.emplace_back(i, false);
    what.emplace_back(i, true);
  }
  return rollouts.run(what, s.params.n);
}

// Adaptive (data::adaptive_critical_position): a position's with class from a first wave of kFirstWave
// rollouts when more than 3 are correct (G, exact), else from all n (a second wave continues the first); the
// without rollouts at the critical position only.
bool sample_adaptive(TrajectoryRollouts& rollouts, const Sampled& out, const Setup& s, int64_t start,
                     int64_t L) {
  const std::vector<int16_t>& correct = out.t.with_correct;
  const auto classify = [&](const std::vector<int64_t>& positions) {
    std::vector<data::SuccessClass> classes;
    std::vector<std::pair<int64_t, bool>> what, rest;
    for (int64_t i : positions) what.emplace_back(i, false);
    const int64_t first = std::min(kFirstWave, s.params.n);
    if (!rollouts.run(what, first)) return classes;
    if (first < s.params.n) {
      for (int64_t i : positions)
        if (data::success_class(correct[static_cast<size_t>(i)]) != data::SuccessClass::G)
          rest.emplace_back(i, false);
      if (!rest.empty() && !rollouts.run(rest, s.params.n, first)) return classes;
    }
    for (int64_t i : positions) classes.push_back(data::success_class(correct[static_cast<size_t>(i)]));
    return classes;
  };
  const std::optional<int32_t> r = data::adaptive_critical_position(start, L - 2, s.window, classify);
  if (!r) return false;
  assert(*r == data::critical_position(correct, out.t.with_total));  // the rule on the positions classified
  return *r < 0 || rollouts.run({{*r, true}}, s.params.n);
}

Sampled sample_trajectory(engine::Engine& eng, const text::Tokenizer& tok, const Setup& s, int64_t pair,
                          const TokenizedSide& side, const data::DpoPairText& text) {
  const auto L = static_cast<int64_t>(side.ids.size());
  const int64_t start = side.response_start;
  Sampled out;
  io::Trajectory& t = out.t;
  t.question = question_of(text.prompt, s.kind);
  t.answer = Json(text.answers).dump();
  t.pair_index = static_cast<int32_t>(pair);
  t.token_ids = side.ids;
  t.response_start = static_cast<int32_t>(start);
  for (auto* v : {&t.with_correct, &t.with_total, &t.without_correct, &t.without_total})
    v->assign(side.ids.size(), 0);
  if (start >= L) return out;  // an empty response: nothing to roll out
  TrajectoryRollouts rollouts(eng, tok, s, pair, side, text, out);
  out.complete =
      s.adaptive ? sample_adaptive(rollouts, out, s, start, L) : sample_exhaustive(rollouts, s, start, L);
  if (out.complete) rollouts.finish();
  return out;
}

std::vector<int32_t> widen(const std::vector<int16_t>& v) {
  return {v.begin(), v.end()};
}
std::vector<int16_t> narrow(const std::vector<int32_t>& v) {
  return {v.begin(), v.end()};
}

Json trajectory_record(const Sampled& s) {
  const io::Trajectory& t = s.t;
  return Json{{"ids", base64_ints(t.token_ids)},
              {"wc", base64_ints(widen(t.with_correct))},
              {"wt", base64_ints(widen(t.with_total))},
              {"oc", base64_ints(widen(t.without_correct))},
              {"ot", base64_ints(widen(t.without_total))},
              {"alt", base64_ints(t.alt_token_ids)},
              {"altc", base64_ints(std::vector<int32_t>(t.alt_correct.begin(), t.alt_correct.end()))},
              {"generated", s.generated},
              {"rollouts", s.rollouts}};
}

// The rollouts a journal record's trajectory made (records written before "rollouts" was kept: the counts').
int64_t rollouts_made(const Json& r) {
  if (r.contains("rollouts")) return r.at("rollouts").get<int64_t>();
  int64_t n = 0;
  for (const char* key : {"wt", "ot"})
    for (int32_t v : ints_from_base64(r.at(key), "journal")) n += v;
  return n;
}

io::Trajectory trajectory_from_record(const Json& r, const TokenizedSide& side, const data::DpoPairText& text,
                                      int64_t pair, data::DatasetKind kind, const std::string& where) {
  io::Trajectory t;
  t.question = question_of(text.prompt, kind);
  t.answer = Json(text.answers).dump();
  t.pair_index = static_cast<int32_t>(pair);
  t.token_ids = ints_from_base64(r.at("ids"), where);
  t.response_start = side.response_start;
  t.with_correct = narrow(ints_from_base64(r.at("wc"), where));
  t.with_total = narrow(ints_from_base64(r.at("wt"), where));
  t.without_correct = narrow(ints_from_base64(r.at("oc"), where));
  t.without_total = narrow(ints_from_base64(r.at("ot"), where));
  t.alt_token_ids = ints_from_base64(r.at("alt"), where);
  for (int32_t v : ints_from_base64(r.at("altc"), where)) t.alt_correct.push_back(static_cast<int8_t>(v));
  t.alt_offsets.push_back(0);
  for (int16_t n : t.without_total) t.alt_offsets.push_back(t.alt_offsets.back() + n);
  t.critical_position = data::critical_position(t.with_correct, t.with_total);
  return t;
}

}  // namespace

int run_sampling(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("sampling needs --dataset_name GSM8K|MATH|ARITH");
  Setup s;
  s.kind = data::parse_dataset(c.dataset_name);
  s.grader = grade::parse_grader(ctx.vm["grader"].as<std::string>());
  s.seed = c.seed;
  const std::string search = ctx.vm["search"].as<std::string>();
  if (search != "exhaustive" && search != "adaptive")
    throw UsageError("--search must be exhaustive or adaptive, not '" + search + "'");
  s.adaptive = search == "adaptive";
  s.window = int_option(ctx, "adaptive_window", 1, int64_t{1} << 31);
  const int64_t max_trajectories = int_option(ctx, "max_trajectories", 1, int64_t{1} << 31);
  // The file's counts are int16.
  const int64_t rollouts = int_option(ctx, "rollouts_per_position", 1, std::numeric_limits<int16_t>::max());
  const std::string model_dir = resolve_model_path(c);
  const std::string model = model_label(c, model_dir);
  s.params = paper_sampling_params(ctx, model, s.kind, rollouts, "sampling");
  const std::string dpo_path = !c.cdpo_data_path.empty()
                                   ? c.cdpo_data_path
                                   : startup_data_paths(c, model, startup_tag(ctx, model)).dpo;
  std::string output = ctx.vm["output"].as<std::string>();
  if (output.empty())
    output = output_path(c, "data/rollout_sampling/" + model + "/" + c.dataset_name + ".rollouts.h5");
  const std::string stats_path = with_suffix_replaced(output, ".h5", ".stats.json");
  check_output_file(output);
  check_output_file(stats_path);
  std::vector<data::DpoPairText> texts = data::read_dpo_json(dpo_path);
  if (static_cast<int64_t>(texts.size()) > max_trajectories)
    texts.resize(static_cast<size_t>(max_trajectories));
  const auto T = static_cast<int64_t>(texts.size());
  CTM_CHECK(T > 0, dpo_path, ": no DPO pair");

  InferenceModel m = load_inference_model(c, ctx.comm);
  std::vector<TokenizedPair> pairs = tokenize_pairs(*m.tokenizer, texts);
  // The rollouts start from cuts of the trajectory after its first token at the earliest.
  for (int64_t i = 0; i < T; ++i)
    CTM_CHECK(pairs[i].rejected.response_start >= 1 || pairs[i].rejected.ids.empty(), dpo_path, ": pair ", i,
              ": the response starts at token 0 (an empty prompt and a tokenizer without BOS); rollouts need "
              "at least one token before it");
  Json settings = {{"task", "sampling"},
                   {"search", search},
                   {"model_path", m.dir},
                   {"lora_path", c.lora_path},
                   {"dpo_data", dpo_path},
                   {"dpo_data_hash", file_fingerprint(dpo_path)},
                   {"trajectories", T},
                   {"t", s.params.temperature},
                   {"top_p", s.params.top_p},
                   {"max_new_tokens", s.params.max_new_tokens},
                   {"rollouts_per_position", s.params.n},
                   {"grader", grade::grader_name(s.grader)},
                   {"seed", c.seed}};
  if (s.adaptive) {
    settings["adaptive_window"] = s.window;
    settings["adaptive_first_wave"] = kFirstWave;
  }
  ResumableWork work(ctx, output, settings, T, [&](int64_t i, const Json& rec) -> std::string {
    return ints_from_base64(rec.at("ids"), "journal") == pairs[i].rejected.ids ? ""
                                                                               : "not this pair's tokens";
  });
  work.recover();
  spdlog::info("sampling: {} trajectories of {} ({} already done), {} rollouts a position, t = {}, model {}",
               T, dpo_path, work.done_count(), s.params.n, s.params.temperature, m.dir);

  const auto t0 = std::chrono::steady_clock::now();
  engine::EngineOptions eo = engine_options(ctx, "sampling");
  eo.progress = false;
  engine::Engine eng(*m.model, *m.tokenizer, eo);
  std::vector<double> costs;
  for (const auto& p : pairs)
    costs.push_back(static_cast<double>(p.rejected.ids.size() - p.rejected.response_start));
  for (int64_t i : my_share(ctx, work.pending(), costs)) {
    if (stop_requested()) break;
    const Sampled done = sample_trajectory(eng, *m.tokenizer, s, i, pairs[i].rejected, texts[i]);
    if (!done.complete) break;
    work.add(i, trajectory_record(done));
    spdlog::info(
        "sampling: trajectory {} ({} response tokens): critical token {}, {} rollouts, {} tokens generated",
        i, done.t.token_ids.size() - done.t.response_start, done.t.critical_position, done.rollouts,
        done.generated);
  }
  work.stop_if_requested("trajectories");
  const double seconds = seconds_since(t0);

  const auto [begin, end] = dist::block_range(T, ctx.comm.rank(), ctx.comm.size());
  io::Rollouts mine;
  mine.run = {settings.dump(), model, c.dataset_name, CTM_VERSION};
  mine.t = s.params.temperature;
  mine.top_p = s.params.top_p;
  mine.rollouts_per_position = s.params.n;
  mine.search = search;
  mine.seed = c.seed;
  int64_t generated = 0;
  const std::vector<Json> records = work.collect(begin, end);
  for (int64_t i = begin; i < end; ++i) {
    const Json& r = records[static_cast<size_t>(i - begin)];
    generated += r.at("generated").get<int64_t>();
    mine.trajectories.push_back(trajectory_from_record(r, pairs[i].rejected, texts[i], i, s.kind,
                                                       str(work.folder(), ": trajectory ", i)));
  }
  dist::write_rollouts(ctx.comm, output, mine);
  std::vector<double> totals = {static_cast<double>(generated), seconds};
  ctx.comm.allreduce_sum(totals.data(), 2);
  if (ctx.comm.rank() == 0) {
    int64_t rollouts = 0;
    for (const Json& r : work.collect_all()) rollouts += rollouts_made(r);
    write_json_file_atomic(stats_path, Json{{"search", search},
                                            {"trajectories", T},
                                            {"rollouts", rollouts},
                                            {"generated_tokens", static_cast<int64_t>(totals[0])},
                                            {"seconds", totals[1] / ctx.comm.size()}});
    std::cout << "sampling: " << T << " trajectories -> " << output << std::endl;
  }
  work.finish();
  return 0;
}

}  // namespace ctm::tasks
