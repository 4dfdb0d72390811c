// ctm analyse (DESIGN.md §2 "Rollout sampling and critical tokens"): reads sampling's rollouts.h5, finds each
// trajectory's critical token with the paper's rule (data::critical_position on the *with* counts), and
// computes pass@k (k = 1 .. rollouts per position, unbiased) *with* and *without* the critical token, over
// the trajectories that have one. With CE scores of the same pairs (calculate_ce_score's ce_scores.h5), it
// also ranks each critical token among its response's tokens by ce_prob, lowest first: how well contrastive
// estimation finds what rollouts find. Prints a table; writes <rollouts>.analysis.json (or --output).
#include <cmath>
#include <cstdio>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/data/critical.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/rollouts.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"

namespace ctm::tasks {

void add_analyse_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("rollouts", po::value<std::string>()->default_value(""),
     "sampling's HDF5 file (default: data/rollout_sampling/<model>/<dataset>.rollouts.h5)")
    ("ce_scores", po::value<std::string>()->default_value(""),
     "CE scores of the same DPO pairs, to rank the critical tokens by ce_prob (default: "
     "data/<model>/<dataset>.ce_scores.h5 when it exists; 'none' to skip)")
    ("output", po::value<std::string>()->default_value(""), "JSON report (default: <rollouts without .h5>.analysis.json)");
  // clang-format on
}

namespace {

struct Paths {
  std::string rollouts, ce_scores, output;
};

Paths analyse_paths(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  Paths p{ctx.vm["rollouts"].as<std::string>(), ctx.vm["ce_scores"].as<std::string>(),
          ctx.vm["output"].as<std::string>()};
  const bool named = !c.model_name.empty() && !c.dataset_name.empty();
  if (p.rollouts.empty()) {
    if (!named) throw UsageError("analyse needs --rollouts FILE, or --model_name and --dataset_name");
    p.rollouts =
        output_path(c, "data/rollout_sampling/" + c.model_name + "/" + c.dataset_name + ".rollouts.h5");
  }
  if (p.ce_scores.empty() && named) {
    const std::string fallback =
        output_path(c, "data/" + c.model_name + "/" + c.dataset_name + ".ce_scores.h5");
    if (file_exists(fallback)) p.ce_scores = fallback;
  }
  if (p.ce_scores == "none") p.ce_scores.clear();
  if (p.output.empty()) p.output = with_suffix_replaced(p.rollouts, ".h5", ".analysis.json");
  return p;
}

Json optional_list(const std::vector<std::optional<double>>& values) {
  Json out = Json::array();
  for (const auto& v : values) out.push_back(v ? Json(*v) : Json(nullptr));
  return out;
}

// The rank (1 = lowest) of the critical token's ce_prob among its response's tokens, when the CE file scored
// exactly this trajectory's tokens for its pair's rejected side; -1 otherwise.
int64_t ce_rank(const io::Trajectory& t, const io::CeScores& ce) {
  if (t.critical_position < 0 || t.pair_index < 0 || t.pair_index >= static_cast<int32_t>(ce.pairs.size()))
    return -1;
  const io::CeSide& side = ce.pairs[static_cast<size_t>(t.pair_index)].rejected;
  if (side.token_ids != t.token_ids || side.response_start != t.response_start) return -1;
  const float mine = side.ce_prob[static_cast<size_t>(t.critical_position)];
  int64_t rank = 1;
  for (size_t j = static_cast<size_t>(t.response_start); j < side.ce_prob.size(); ++j)
    rank += side.ce_prob[j] < mine;
  return rank;
}

Json ce_report(const std::vector<io::Trajectory>& trajectories, const std::string& path) {
  const io::CeScores ce = io::read_ce_scores(path);
  Json ranks = Json::array();
  int64_t compared = 0, lowest_5pct = 0, with_critical = 0;
  for (const io::Trajectory& t : trajectories) {
    with_critical += t.critical_position >= 0;
    const int64_t rank = ce_rank(t, ce);
    ranks.push_back(rank > 0 ? Json(rank) : Json(nullptr));
    if (rank < 0) continue;
    ++compared;
    const auto response = static_cast<double>(t.token_ids.size()) - t.response_start;
    lowest_5pct += static_cast<double>(rank) <= std::max(1.0, std::ceil(0.05 * response));
  }
  if (compared < with_critical)
    spdlog::warn("analyse: {} of {} critical tokens have no CE scores of the same tokens in {}",
                 with_critical - compared, with_critical, path);
  return {
      {"ce_scores", path},
      {"compared", compared},
      {"rank", ranks},
      {"fraction_in_lowest_5pct", compared > 0 ? Json(static_cast<double>(lowest_5pct) / compared) : Json()}};
}

void print_table(const Json& report, int64_t max_k) {
  std::printf("%lld trajectories, %lld with a critical token\n",
              static_cast<long long>(report["trajectories"].get<int64_t>()),
              static_cast<long long>(report["with_critical"].get<int64_t>()));
  std::printf("%-8s %10s %10s\n", "pass@k", "with", "without");
  for (int64_t k = 1; k <= max_k; k *= 2) {
    const Json& w = report["pass_at_k"]["with"][k - 1];
    const Json& wo = report["pass_at_k"]["without"][k - 1];
    auto cell = [](const Json& v) {
      return v.is_null() ? std::string("-") : str(std::round(v.get<double>() * 1e4) / 1e2, "%");
    };
    std::printf("%-8lld %10s %10s\n", static_cast<long long>(k), cell(w).c_str(), cell(wo).c_str());
  }
  if (report.contains("ce") && !report["ce"]["fraction_in_lowest_5pct"].is_null())
    std::printf("critical tokens in the lowest 5%% of ce_prob: %.2f%% of %lld\n",
                100 * report["ce"]["fraction_in_lowest_5pct"].get<double>(),
                static_cast<long long>(report["ce"]["compared"].get<int64_t>()));
  std::fflush(stdout);
}

}  // namespace

int run_analyse(const TaskContext& ctx) {
  const Paths paths = analyse_paths(ctx);
  check_output_file(paths.output);
  io::Rollouts r = io::read_rollouts(paths.rollouts);
  const int64_t max_k = std::max<int64_t>(1, r.rollouts_per_position);
  Json critical = Json::array();
  std::vector<std::pair<int64_t, int64_t>> with, without;
  int64_t disagree = 0;
  for (io::Trajectory& t : r.trajectories) {
    const int32_t c = data::critical_position(t.with_correct, t.with_total);
    disagree += c != t.critical_position;
    t.critical_position = c;
    critical.push_back(c);
    if (c < 0) continue;
    with.emplace_back(t.with_total[c], t.with_correct[c]);
    if (t.without_total[c] > 0) without.emplace_back(t.without_total[c], t.without_correct[c]);
  }
  if (disagree > 0)
    spdlog::warn(
        "analyse: {} of {} critical positions stored in {} differ from the rule's (used: the rule's)",
        disagree, r.trajectories.size(), paths.rollouts);
  Json report = {{"rollouts", paths.rollouts},
                 {"search", r.search},
                 {"trajectories", r.trajectories.size()},
                 {"with_critical", with.size()},
                 {"critical_position", critical},
                 {"pass_at_k",
                  {{"k", max_k},
                   {"with", optional_list(data::mean_pass_at_k(with, max_k))},
                   {"without", optional_list(data::mean_pass_at_k(without, max_k))}}}};
  if (!paths.ce_scores.empty()) report["ce"] = ce_report(r.trajectories, paths.ce_scores);
  if (ctx.comm.rank() == 0) {
    write_json_file_atomic(paths.output, report);
    print_table(report, max_k);
    spdlog::info("analyse: wrote {}", paths.output);
  }
  return 0;
}

}  // namespace ctm::tasks
