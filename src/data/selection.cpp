#include "ctm/data/selection.hpp"

#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"

namespace ctm::data {

std::vector<AnswerGroup> group_by_answer(const std::vector<GradedResponse>& responses, uint64_t seed,
                                         uint64_t question_index) {
  std::vector<int64_t> order(responses.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(mix_seed(seed, question_index, 0));
  rng.shuffle(order);

  std::vector<AnswerGroup> groups;
  std::unordered_map<std::string, size_t> where;  // answer -> index in groups
  for (int64_t i : order) {
    const GradedResponse& r = responses[i];
    if (r.extracted.empty()) continue;
    auto [it, fresh] = where.try_emplace(r.extracted, groups.size());
    if (fresh) groups.push_back(AnswerGroup{r.extracted, r.correct, {}});
    groups[it->second].members.push_back(i);
  }
  std::stable_sort(groups.begin(), groups.end(), [](const AnswerGroup& a, const AnswerGroup& b) {
    return a.members.size() > b.members.size();
  });
  return groups;
}

QuestionSelection select_responses(const std::vector<GradedResponse>& responses, uint64_t seed,
                                   uint64_t question_index) {
  const std::vector<AnswerGroup> groups = group_by_answer(responses, seed, question_index);
  QuestionSelection s;
  int64_t incorrect = 0;
  for (const AnswerGroup& g : groups)
    if (!g.correct) incorrect += static_cast<int64_t>(g.members.size());
  int64_t need = (incorrect + 1) / 2;  // ceil(0.5 × incorrect non-empty responses)
  for (const AnswerGroup& g : groups) {
    if (g.correct) {
      if (s.positive < 0) s.positive = g.members.front();
      continue;
    }
    if (s.rejected < 0) s.rejected = g.members.front();
    if (need > 0 && (s.negatives.empty() || g.members.size() > 1)) {
      s.negatives.push_back(g.members.front());
      need -= static_cast<int64_t>(g.members.size());
    }
  }
  if (s.positive >= 0 && s.rejected >= 0) {
    s.chosen = s.positive;
  } else {
    s.rejected = -1;
  }
  return s;
}

namespace {

Json gold_list(const SampledQuestion& q) {
  Json a = Json::array();
  for (const std::string& g : q.answers) a.push_back(g);
  return a;
}

Json sft_entry(const SampledQuestion& q, int64_t response) {
  Json e = Json::object();
  e["question"] = q.question;
  e["response"] = python_strip(q.responses.at(response).text);
  e["answer"] = gold_list(q);
  return e;
}

void check_sizes(const std::vector<SampledQuestion>& questions, const std::vector<QuestionSelection>& sel) {
  CTM_CHECK(questions.size() == sel.size(), "selection: ", questions.size(), " questions but ", sel.size(),
            " selections");
}

}  // namespace

Json build_sft_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const Json& config) {
  check_sizes(questions, selections);
  Json pos = Json::object(), neg = Json::object();
  for (size_t i = 0; i < questions.size(); ++i) {
    const SampledQuestion& q = questions[i];
    const QuestionSelection& s = selections[i];
    if (s.positive >= 0) pos[q.id] = sft_entry(q, s.positive);
    for (size_t k = 0; k < s.negatives.size(); ++k)
      neg[q.id + "_" + std::to_string(k)] = sft_entry(q, s.negatives[k]);
  }
  Json out = Json::object();
  out["config"] = config;
  out["pos"] = std::move(pos);
  out["neg"] = std::move(neg);
  return out;
}

Json build_dpo_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const PromptBuilder& prompts,
                    const Json& config) {
  check_sizes(questions, selections);
  Json prompt = Json::array(), chosen = Json::array(), rejected = Json::array(), answer = Json::array();
  for (size_t i = 0; i < questions.size(); ++i) {
    const SampledQuestion& q = questions[i];
    const QuestionSelection& s = selections[i];
    if (s.chosen < 0 || s.rejected < 0) continue;
    prompt.push_back(prompts.framed(q.question));
    chosen.push_back(python_strip(q.responses.at(s.chosen).text));
    rejected.push_back(python_strip(q.responses.at(s.rejected).text));
    answer.push_back(gold_list(q));
  }
  Json out = Json::object();
  out["config"] = config;
  out["prompt"] = std::move(prompt);
  out["chosen"] = std::move(chosen);
  out["rejected"] = std::move(rejected);
  out["answer"] = std::move(answer);
  return out;
}

namespace {

std::vector<std::string> gold_answers(const Json& v, const std::string& where) {
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) throw Error(str(where, ": \"answer\" must be a list of gold answers"));
  for (const Json& a : v) {
    if (!a.is_string() && !a.is_number())
      throw Error(str(where, ": \"answer\" entries must be strings or numbers"));
    out.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  return out;
}

std::vector<SftExample> sft_side(const Json& root, const char* side, const std::string& path) {
  const Json& entries = require_field(root, side, path);
  if (!entries.is_object()) throw Error(str(path, ": \"", side, "\" must be an object {id: example}"));
  std::vector<SftExample> out;
  for (const auto& kv : entries.items()) {
    const std::string where = str(path, ": ", side, "[\"", kv.key(), "\"]");
    SftExample e;
    e.id = kv.key();
    e.question = require_string(kv.value(), "question", where);
    e.response = require_string(kv.value(), "response", where);
    e.answers = gold_answers(require_field(kv.value(), "answer", where), where);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

SftData read_sft_json(const std::string& path) {
  const Json root = read_json_file(path);
  return {sft_side(root, "pos", path), sft_side(root, "neg", path)};
}

std::vector<DpoPairText> read_dpo_json(const std::string& path) {
  const Json root = read_json_file(path);
  std::vector<DpoPairText> out;
  const char* keys[] = {"prompt", "chosen", "rejected", "answer"};
  size_t n = 0;
  for (const char* k : keys) {
    const Json& v = require_field(root, k, path);
    if (!v.is_array()) throw Error(str(path, ": \"", k, "\" must be a list"));
    if (k == keys[0]) n = v.size();
    if (v.size() != n) throw Error(str(path, ": \"", k, "\" has ", v.size(), " entries, \"prompt\" has ", n));
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string where = str(path, ": pair ", i);
    DpoPairText p;
    for (auto [key, dst] :
         {std::pair{"prompt", &p.prompt}, {"chosen", &p.chosen}, {"rejected", &p.rejected}}) {
      const Json& v = root[key][i];
      if (!v.is_string()) throw Error(str(where, ": \"", key, "\" must be a string"));
      *dst = v.get<std::string>();
    }
    p.answers = gold_answers(root["answer"][i], where);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ctm::data
