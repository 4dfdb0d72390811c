// ctm calculate_ce_score (DESIGN.md §2 "Contrastive estimation"): for every DPO pair and side, the tokens of
// prompt + response (BOS where the tokenizer adds one), and per token ce_prob = softmax((1 + β)·logits_pos −
// β·logits_neg)[token] (β = 1), logp_pos and logp_neg, with the positive and negative adapters switched on
// one copy of the base. Writes data/{model}/{dataset}.ce_scores.h5 (DESIGN.md §5, docs/file-formats.md),
// collectively under MPI, and with --export_json the release's CE_scored JSON. Pairs are journaled batch by
// batch (ResumableWork): a killed run resumes from the pairs already scored.
#include <algorithm>
#include <iostream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/data/selection.hpp"
#include "ctm/dist/h5_collective.hpp"
#include "ctm/dist/partition.hpp"
#include "ctm/model/lora.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/inference.hpp"
#include "ctm/tasks/lora_training.hpp"
#include "ctm/tasks/plan.hpp"
#include "ctm/tasks/resumable.hpp"
#include "ctm/tasks/scored_pairs.hpp"
#include "ctm/train/contrastive.hpp"

namespace ctm::tasks {

void add_calculate_ce_score_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("dpo_data", po::value<std::string>()->default_value(""),
     "DPO pairs, ours or the release's (default: data/<model>/<dataset>.dpo_top_k1.<tag>.json)")
    ("pos_adapter", po::value<std::string>()->default_value(""), "positive CE adapter (default: checkpoints/<model>/<dataset>/sft/pos)")
    ("neg_adapter", po::value<std::string>()->default_value(""), "negative CE adapter (default: checkpoints/<model>/<dataset>/sft/neg)")
    ("beta", po::value<double>()->default_value(1.0), "contrast strength: (1 + beta) pos - beta neg")
    ("batch_tokens", po::value<int64_t>()->default_value(8192), "padded tokens per forward pass")
    ("output", po::value<std::string>()->default_value(""), "HDF5 file (default: data/<model>/<dataset>.ce_scores.h5)")
    ("export_json", po::value<std::string>()->implicit_value("auto"),
     "also write the release's CE_scored JSON (to FILE, or beside the DPO file as <dpo>.CE_scored.json)");
  // clang-format on
  add_dry_run_option(desc);
}

namespace {

Json side_record(const TokenizedSide& side, const train::TokenScores& s) {
  return Json{{"ids", base64_ints(side.ids)},
              {"start", side.response_start},
              {"ce", base64_floats(s.ce_prob)},
              {"lp", base64_floats(s.logp_pos)},
              {"ln", base64_floats(s.logp_neg)}};
}

io::CeSide side_from_record(const Json& r, const std::string& response, const std::string& where) {
  io::CeSide s;
  s.token_ids = ints_from_base64(r.at("ids"), where);
  s.response_start = r.at("start").get<int32_t>();
  s.ce_prob = floats_from_base64(r.at("ce"), where);
  s.logp_pos = floats_from_base64(r.at("lp"), where);
  s.logp_neg = floats_from_base64(r.at("ln"), where);
  s.response = response;
  return s;
}

// Scores this rank's pending pairs, batch by batch (both sides of several pairs per forward), journaling
// each.
void score_pending(const TaskContext& ctx, model::Transformer& model, const model::LoraAdapters& pos,
                   const model::LoraAdapters& neg, const std::vector<TokenizedPair>& pairs,
                   ResumableWork& work, double beta, int64_t batch_tokens) {
  std::vector<double> costs;
  for (const auto& p : pairs)
    costs.push_back(static_cast<double>(p.chosen.ids.size() + p.rejected.ids.size()));
  std::vector<int64_t> mine = my_share(ctx, work.pending(), costs);
  std::stable_sort(mine.begin(), mine.end(), [&](int64_t a, int64_t b) { return costs[a] > costs[b]; });
  for (size_t start = 0; start < mine.size() && !stop_requested();) {
    const int64_t longest = static_cast<int64_t>(
        std::max(pairs[mine[start]].chosen.ids.size(), pairs[mine[start]].rejected.ids.size()));
    const size_t end = std::min(mine.size(), start + std::max<size_t>(1, batch_tokens / (2 * longest)));
    std::vector<std::vector<int64_t>> seqs;
    for (size_t k = start; k < end; ++k)
      for (const TokenizedSide* s : {&pairs[mine[k]].chosen, &pairs[mine[k]].rejected})
        seqs.emplace_back(s->ids.begin(), s->ids.end());
    const auto scores = train::contrastive_scores(model, pos, neg, seqs, beta);
    for (size_t k = start; k < end; ++k) {
      const auto& p = pairs[mine[k]];
      const size_t row = 2 * (k - start);
      work.add(mine[k], Json{{"chosen", side_record(p.chosen, scores[row])},
                             {"rejected", side_record(p.rejected, scores[row + 1])}});
    }
    start = end;
  }
  work.stop_if_requested("pairs");
}

Json release_json(const std::vector<data::DpoPairText>& texts, const std::vector<io::CePair>& scored) {
  Json out = {{"prompt", Json::array()},
              {"chosen", Json::array()},
              {"rejected", Json::array()},
              {"prob_result", Json::array()}};
  for (size_t i = 0; i < texts.size(); ++i) {
    out["prompt"].push_back(texts[i].prompt);
    out["chosen"].push_back(texts[i].chosen);
    out["rejected"].push_back(texts[i].rejected);
    auto side = [](const io::CeSide& s) {
      return Json{{"ce_prob", s.ce_prob}, {"response_start_idx", s.response_start}, {"text", s.response}};
    };
    out["prob_result"].push_back(Json{{"pos", side(scored[i].chosen)}, {"neg", side(scored[i].rejected)}});
  }
  return out;
}

}  // namespace

int run_calculate_ce_score(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("calculate_ce_score needs --dataset_name GSM8K|MATH|ARITH");
  data::parse_dataset(c.dataset_name);
  reject_lora_path(ctx, "calculate_ce_score");
  const double beta = real_option(ctx, "beta", 0, 100);
  const int64_t batch_tokens = int_option(ctx, "batch_tokens", 1, int64_t{1} << 32);
  const std::string base_dir = resolve_model_path(c);
  const std::string model_name = model_label(c, base_dir);
  const ScoredPairPaths paths = scored_pair_paths(ctx, model_name);
  std::string pos_dir = ctx.vm["pos_adapter"].as<std::string>(),
              neg_dir = ctx.vm["neg_adapter"].as<std::string>();
  const std::string sft = output_path(c, "checkpoints/" + model_name + "/" + c.dataset_name + "/sft");
  if (pos_dir.empty()) pos_dir = sft + "/pos";
  if (neg_dir.empty()) neg_dir = sft + "/neg";
  std::string export_path;
  if (ctx.vm.count("export_json")) {
    export_path = ctx.vm["export_json"].as<std::string>();
    if (export_path == "auto") export_path = release_ce_json_path(paths.dpo);
    check_output_file(export_path);
  }
  check_output_file(paths.ce_scores);
  const std::vector<data::DpoPairText> texts = data::read_dpo_json(paths.dpo);
  const int64_t P = static_cast<int64_t>(texts.size());
  if (dry_run(ctx)) {
    const ModelCheck m = check_model_folder(base_dir);
    Plan plan("calculate_ce_score");
    plan.model(ctx, m);
    plan.add("adapters", str("pos ", pos_dir, ": ", check_adapter_folder(pos_dir), "; neg ", neg_dir, ": ",
                             check_adapter_folder(neg_dir)));
    size_t longest = 0;
    for (const TokenizedPair& p : tokenize_pairs(m.tokenizer, texts))
      longest = std::max({longest, p.chosen.ids.size(), p.rejected.ids.size()});
    plan.add("items", str(P, " pairs of ", paths.dpo, ", 2 sides of up to ", longest, " tokens each, ",
                          batch_tokens, " tokens per forward"));
    model::FootprintQuery q;
    q.dtype_bytes = device_dtype_bytes(c);
    q.tokens_per_micro_batch = batch_tokens;
    q.forward_only = true;
    plan.memory(model::estimate_footprint(m.config, q));
    plan.add("outputs", paths.ce_scores + (export_path.empty() ? "" : ", " + export_path));
    plan.resume_state(paths.ce_scores, "replaced: every pair is scored again");
    plan.print(ctx);
    return 0;
  }

  // Whole on every rank: the ranks score different pairs, a different number of forwards each.
  const BaseModel base = load_base_model(ctx, /*sharded=*/false);
  model::Transformer& model = *base.model;
  const text::Tokenizer tok = load_model_tokenizer(base_dir, model.config());
  const std::vector<TokenizedPair> pairs = tokenize_pairs(tok, texts);
  const Json settings = {{"task", "calculate_ce_score"},
                         {"model_path", base_dir},
                         {"dpo_data", paths.dpo},
                         {"dpo_data_hash", file_fingerprint(paths.dpo)},
                         {"pos_adapter", pos_dir},
                         {"neg_adapter", neg_dir},
                         {"beta", beta},
                         {"device", c.device}};
  ResumableWork work(ctx, paths.ce_scores, settings, P, [&](int64_t i, const Json& rec) -> std::string {
    const auto ids = ints_from_base64(rec.at("chosen").at("ids"), "journal");
    return ids == pairs[i].chosen.ids ? "" : "not this pair's tokens";
  });
  work.recover();
  spdlog::info("calculate_ce_score: {} pairs of {} ({} already scored), adapters {} and {}, beta {}", P,
               paths.dpo, work.done_count(), pos_dir, neg_dir, beta);
  if (work.done_count() < P) {
    model::load_peft(model, pos_dir);
    const model::LoraAdapters pos = model::detach_lora(model);
    model::load_peft(model, neg_dir);
    const model::LoraAdapters neg = model::detach_lora(model);
    score_pending(ctx, model, pos, neg, pairs, work, beta, batch_tokens);
  }

  // Each rank writes its contiguous block of pairs into the file (parallel HDF5).
  const auto [begin, end] = dist::block_range(P, ctx.comm.rank(), ctx.comm.size());
  io::CeScores mine;
  mine.beta = beta;
  mine.run = {settings.dump(), model_name, c.dataset_name, CTM_VERSION};
  const std::vector<Json> records = work.collect(begin, end);
  for (int64_t i = begin; i < end; ++i) {
    const Json& r = records[i - begin];
    const std::string where = str(work.folder(), ": pair ", i);
    mine.pairs.push_back({texts[i].prompt, Json(texts[i].answers).dump(),
                          side_from_record(r.at("chosen"), texts[i].chosen, where),
                          side_from_record(r.at("rejected"), texts[i].rejected, where)});
  }
  dist::write_ce_scores(ctx.comm, paths.ce_scores, mine);
  if (!export_path.empty() && ctx.comm.rank() == 0) {
    std::vector<io::CePair> all;
    const std::vector<Json> every = work.collect_all();
    for (int64_t i = 0; i < P; ++i)
      all.push_back({texts[i].prompt, "", side_from_record(every[i].at("chosen"), texts[i].chosen, "journal"),
                     side_from_record(every[i].at("rejected"), texts[i].rejected, "journal")});
    write_json_file_atomic(export_path, release_json(texts, all), -1);
  }
  work.finish();
  if (ctx.comm.rank() == 0) {
    std::cout << "calculate_ce_score: " << P << " pairs -> " << paths.ce_scores
              << (export_path.empty() ? "" : " and " + export_path) << std::endl;
  }
  return 0;
}

}  // namespace ctm::tasks
