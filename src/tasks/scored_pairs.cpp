#include "ctm/tasks/scored_pairs.hpp"

#include "ctm/core/error.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/json.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/train/lm_data.hpp"

namespace ctm::tasks {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TokenizedSide tokenize_side(const text::Tokenizer& tok, bool add_bos, const std::string& prompt,
                            const std::string& response) {
  TokenizedSide side;
  if (add_bos) side.ids.push_back(*tok.bos_id());
  const auto ids = tok.encode(prompt + response, /*add_special_tokens=*/false);
  size_t offset = 0;
  side.response_start = -1;
  for (int32_t id : ids) {
    const auto bytes = tok.token_bytes(id);
    CTM_CHECK(bytes.has_value(), "the tokenizer's decoder does not map token ", id,
              " to bytes; CE scores need a byte-level tokenizer");
    offset += bytes->size();
    if (side.response_start < 0 && offset > prompt.size())
      side.response_start = static_cast<int32_t>(side.ids.size());
    side.ids.push_back(id);
  }
  if (side.response_start < 0) side.response_start = static_cast<int32_t>(side.ids.size());
  return side;
}

std::vector<std::vector<float>> from_h5(const std::string& path,
                                        const std::vector<data::DpoPairText>& texts) {
  const io::CeScores scores = io::read_ce_scores(path);
  CTM_CHECK(scores.pairs.size() == texts.size(), path, " scores ", scores.pairs.size(),
            " pairs, the DPO file has ", texts.size());
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    const io::CePair& p = scores.pairs[i];
    CTM_CHECK(p.prompt == texts[i].prompt && p.rejected.response == texts[i].rejected &&
                  p.chosen.response == texts[i].chosen,
              path, ": pair ", i, " is not the DPO file's pair ", i, " (scored for another DPO file?)");
    out.push_back(p.rejected.ce_prob);
  }
  return out;
}

std::vector<std::vector<float>> from_release_json(const std::string& path,
                                                  const std::vector<data::DpoPairText>& texts) {
  const Json root = read_json_file(path);
  const Json& results = require_field(root, "prob_result", path);
  CTM_CHECK(results.is_array() && results.size() == texts.size(), path, ": \"prob_result\" must list ",
            texts.size(), " pairs (the DPO file's), has ", results.is_array() ? results.size() : 0);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string where = str(path, ": prob_result[", i, "].neg");
    const Json& neg = require_field(results[i], "neg", where);
    const Json& ce = require_field(neg, "ce_prob", where);
    CTM_CHECK(ce.is_array(), where, ": \"ce_prob\" must be a list");
    std::vector<float> probs;
    for (const Json& v : ce)
      probs.push_back(static_cast<float>(json_number(v, 0, 1, "every ce_prob", where)));
    out.push_back(std::move(probs));
  }
  return out;
}

}  // namespace

ScoredPairPaths scored_pair_paths(const TaskContext& ctx, const std::string& model) {
  const CommonOptions& c = ctx.common;
  ScoredPairPaths p;
  p.dpo = ctx.vm.count("dpo_data") ? ctx.vm["dpo_data"].as<std::string>() : std::string();
  if (p.dpo.empty()) p.dpo = startup_data_paths(c, model, startup_tag(ctx, model)).dpo;
  for (const char* key : {"output", "ce_scores"})
    if (ctx.vm.count(key) && !ctx.vm[key].as<std::string>().empty())
      p.ce_scores = ctx.vm[key].as<std::string>();
  if (p.ce_scores.empty())
    p.ce_scores = output_path(c, "data/" + model + "/" + c.dataset_name + ".ce_scores.h5");
  return p;
}

std::string release_ce_json_path(const std::string& dpo_path) {
  return with_suffix_replaced(dpo_path, ".json", ".CE_scored.json");
}

std::vector<TokenizedPair> tokenize_pairs(const text::Tokenizer& tok,
                                          const std::vector<data::DpoPairText>& pairs) {
  const bool add_bos = train::tokenizer_adds_bos(tok);
  std::vector<TokenizedPair> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs) {
    TokenizedPair t;
    t.chosen = tokenize_side(tok, add_bos, p.prompt, p.chosen);
    t.rejected = tokenize_side(tok, add_bos, p.prompt, p.rejected);
    t.prompt_tokens = std::min(t.chosen.response_start, t.rejected.response_start);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::vector<float>> rejected_ce_probs(const std::string& path,
                                                  const std::vector<data::DpoPairText>& texts,
                                                  const std::vector<TokenizedPair>& pairs) {
  std::vector<std::vector<float>> probs =
      ends_with(path, ".json") ? from_release_json(path, texts) : from_h5(path, texts);
  for (size_t i = 0; i < pairs.size(); ++i)
    CTM_CHECK(probs[i].size() == pairs[i].rejected.ids.size(), path, ": pair ", i, " has ", probs[i].size(),
              " scores for ", pairs[i].rejected.ids.size(),
              " tokens of prompt + rejected (another tokenizer?)");
  return probs;
}

TrainingPairs training_pairs(const std::vector<TokenizedPair>& tokenized,
                             const std::vector<std::vector<float>>* ce, int32_t eos, int64_t max_prompt,
                             int64_t max_length) {
  TrainingPairs out;
  for (size_t i = 0; i < tokenized.size(); ++i) {
    const TokenizedPair& t = tokenized[i];
    const int64_t longest = static_cast<int64_t>(std::max(t.chosen.ids.size(), t.rejected.ids.size())) + 1;
    if (t.prompt_tokens >= max_prompt || longest > max_length) {
      ++out.dropped;
      continue;
    }
    train::PreferencePair p;
    p.chosen = t.chosen.ids;
    p.chosen.push_back(eos);
    p.rejected = t.rejected.ids;
    p.rejected.push_back(eos);
    p.chosen_start = t.chosen.response_start;
    p.rejected_start = t.rejected.response_start;
    if (ce) {  // w = 1 − ce_prob on the rejected tokens, aligned by index; the EOS (no score) weighs 1
      CTM_CHECK((*ce)[i].size() < p.rejected.size(), "pair ", i, ": ", (*ce)[i].size(), " CE scores for ",
                p.rejected.size() - 1, " rejected tokens");
      p.rejected_weights.assign(p.rejected.size(), 1.0f);
      for (size_t j = 0; j < (*ce)[i].size(); ++j) p.rejected_weights[j] = 1.0f - (*ce)[i][j];
    }
    out.pairs.push_back(std::move(p));
  }
  return out;
}

}  // namespace ctm::tasks
