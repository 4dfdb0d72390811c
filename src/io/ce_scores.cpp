#include "ctm/io/ce_scores.hpp"

#include <cmath>
#include <limits>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"

namespace ctm::io {
namespace {

void check_side(const CeSide& s, const std::string& w) {
  const size_t n = s.token_ids.size();
  CTM_CHECK(n <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), w, ": ", n, " tokens");
  CTM_CHECK(s.ce_prob.size() == n && s.logp_pos.size() == n && s.logp_neg.size() == n, w, ": ", n,
            " token ids but ", s.ce_prob.size(), " ce_prob, ", s.logp_pos.size(), " logp_pos and ",
            s.logp_neg.size(), " logp_neg values");
  CTM_CHECK(s.response_start >= 0 && static_cast<size_t>(s.response_start) <= n, w, ": response_start ",
            s.response_start, " outside [0, ", n, "]");
  for (size_t i = 0; i < n; ++i) {
    CTM_CHECK(s.ce_prob[i] >= 0.0f && s.ce_prob[i] <= 1.0f, w, ": ce_prob[", i, "] = ", s.ce_prob[i],
              " is not a probability");
    CTM_CHECK(std::isfinite(s.logp_pos[i]) && std::isfinite(s.logp_neg[i]), w, ": logp[", i, "] = (",
              s.logp_pos[i], ", ", s.logp_neg[i], ") is not finite");
  }
  if (n > 0)
    CTM_CHECK(s.ce_prob[0] == 1.0f && s.logp_pos[0] == 0.0f && s.logp_neg[0] == 0.0f, w,
              ": index 0 has no context and must hold ce_prob 1, logp 0; got ", s.ce_prob[0], ", ",
              s.logp_pos[0], ", ", s.logp_neg[0]);
  h5::check_text(s.response, w + " response");
}

void check_answer(const std::string& answer, const std::string& w) {
  CTM_CHECK(parse_json(answer, w + " answer").is_array(), w, ": answer is not a JSON list: ", answer);
  h5::check_text(answer, w + " answer");
}

// One side's flat arrays, appended pair by pair.
struct SideColumns {
  std::vector<int32_t> token_ids, response_start;
  std::vector<int64_t> offsets;
  std::vector<float> ce_prob, logp_pos, logp_neg;
  std::vector<std::string> response;

  void append(const CeSide& s) {
    offsets.push_back(static_cast<int64_t>(token_ids.size()));
    token_ids.insert(token_ids.end(), s.token_ids.begin(), s.token_ids.end());
    response_start.push_back(s.response_start);
    ce_prob.insert(ce_prob.end(), s.ce_prob.begin(), s.ce_prob.end());
    logp_pos.insert(logp_pos.end(), s.logp_pos.begin(), s.logp_pos.end());
    logp_neg.insert(logp_neg.end(), s.logp_neg.begin(), s.logp_neg.end());
    response.push_back(s.response);
  }
  void move_into(FlatFile& f, const std::string& side) {
    const std::string ids = side + "/token_ids";
    f.columns.push_back({ids, std::move(token_ids), ""});
    f.columns.push_back({side + "/offsets", std::move(offsets), ids});
    f.columns.push_back({side + "/response_start", std::move(response_start), ""});
    f.columns.push_back({side + "/ce_prob", std::move(ce_prob), ""});
    f.columns.push_back({side + "/logp_pos", std::move(logp_pos), ""});
    f.columns.push_back({side + "/logp_neg", std::move(logp_neg), ""});
    f.strings.push_back({side + "/response", std::move(response)});
  }
};

void read_side(const h5::File& f, const std::string& side, CeSide CePair::*member,
               std::vector<CePair>& pairs) {
  const auto P = static_cast<int64_t>(pairs.size());
  const std::vector<int32_t> ids = f.read<int32_t>(side + "/token_ids");
  const auto N = static_cast<int64_t>(ids.size());
  const std::vector<int64_t> off = read_offsets(f, side + "/offsets", P, N);
  const std::vector<int32_t> rs = read_exact<int32_t>(f, side + "/response_start", P);
  const std::vector<float> ce = read_exact<float>(f, side + "/ce_prob", N);
  const std::vector<float> lp = read_exact<float>(f, side + "/logp_pos", N);
  const std::vector<float> ln = read_exact<float>(f, side + "/logp_neg", N);
  std::vector<std::string> resp = read_strings_exact(f, side + "/response", P);
  for (int64_t p = 0; p < P; ++p) {
    CeSide& s = pairs[p].*member;
    const int64_t b = off[p], e = off[p + 1];
    CTM_CHECK(rs[p] >= 0 && rs[p] <= e - b, f.where(side + "/response_start"), ": pair ", p, ": ", rs[p],
              " outside [0, ", e - b, "]");
    s.token_ids = slice(ids, b, e);
    s.response_start = rs[p];
    s.ce_prob = slice(ce, b, e);
    s.logp_pos = slice(lp, b, e);
    s.logp_neg = slice(ln, b, e);
    s.response = std::move(resp[p]);
  }
}

}  // namespace

bool CeSide::operator==(const CeSide& o) const {
  return token_ids == o.token_ids && response_start == o.response_start && ce_prob == o.ce_prob &&
         logp_pos == o.logp_pos && logp_neg == o.logp_neg && response == o.response;
}

bool CePair::operator==(const CePair& o) const {
  return prompt == o.prompt && answer == o.answer && chosen == o.chosen && rejected == o.rejected;
}

FlatFile ce_scores_flat(const CeScores& scores, int64_t first_pair) {
  FlatFile f;
  f.attrs = header_attrs(kCeScoresFormat, kCeScoresVersion, scores.run);
  f.attrs.push_back({"beta", scores.beta});
  StringColumn prompt{"prompt", {}}, answer{"answer", {}};
  SideColumns chosen, rejected;
  for (size_t i = 0; i < scores.pairs.size(); ++i) {
    const CePair& p = scores.pairs[i];
    const std::string w = str("pair ", first_pair + static_cast<int64_t>(i));
    h5::check_text(p.prompt, w + " prompt");
    check_answer(p.answer, w);
    check_side(p.chosen, w + " chosen");
    check_side(p.rejected, w + " rejected");
    prompt.data.push_back(p.prompt);
    answer.data.push_back(p.answer);
    chosen.append(p.chosen);
    rejected.append(p.rejected);
  }
  f.strings = {std::move(prompt), std::move(answer)};
  chosen.move_into(f, "chosen");
  rejected.move_into(f, "rejected");
  return f;
}

void write_ce_scores(const std::string& path, const CeScores& scores, const h5::Storage& storage) {
  write_flat_file(path, ce_scores_flat(scores), storage);
}

CeScores read_ce_scores(const std::string& path) {
  const h5::File f = h5::File::open(path);
  CeScores s;
  s.run = read_header(f, kCeScoresFormat, kCeScoresVersion);
  s.beta = f.double_attr("beta");
  std::vector<std::string> prompts = f.read_strings("prompt");
  const auto P = static_cast<int64_t>(prompts.size());
  std::vector<std::string> answers = read_strings_exact(f, "answer", P);
  s.pairs.resize(prompts.size());
  for (int64_t p = 0; p < P; ++p) {
    s.pairs[p].prompt = std::move(prompts[p]);
    s.pairs[p].answer = std::move(answers[p]);
  }
  read_side(f, "chosen", &CePair::chosen, s.pairs);
  read_side(f, "rejected", &CePair::rejected, s.pairs);
  return s;
}

}  // namespace ctm::io
