#include "ctm/io/rollouts.hpp"

#include <limits>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"

namespace ctm::io {
namespace {

void check_counts(const std::vector<int16_t>& correct, const std::vector<int16_t>& total, size_t n,
                  const std::string& w) {
  CTM_CHECK(correct.size() == n && total.size() == n, w, ": ", correct.size(), " correct and ", total.size(),
            " total counts for ", n, " tokens");
  for (size_t i = 0; i < n; ++i)
    CTM_CHECK(total[i] >= 0 && correct[i] >= 0 && correct[i] <= total[i], w, ": token ", i, ": ", correct[i],
              " correct of ", total[i]);
}

// The alternatives: a CSR index over them per token, agreeing with the without counts (an empty alt_offsets
// stands for all zeros).
void check_alternatives(const Trajectory& tr, const std::string& w) {
  const size_t n = tr.token_ids.size();
  const std::vector<int64_t> none(n + 1, 0);
  const auto& o = tr.alt_offsets.empty() ? none : tr.alt_offsets;
  CTM_CHECK(o.size() == n + 1 && o[0] == 0, w, ": alt_offsets must have ", n + 1, " entries starting at 0");
  CTM_CHECK(o[n] == static_cast<int64_t>(tr.alt_token_ids.size()) &&
                tr.alt_correct.size() == tr.alt_token_ids.size(),
            w, ": alt_offsets end at ", o[n], " for ", tr.alt_token_ids.size(), " alternative ids and ",
            tr.alt_correct.size(), " outcomes");
  for (size_t i = 0; i < n; ++i) {
    CTM_CHECK(o[i + 1] >= o[i] && o[i + 1] - o[i] == tr.without_total[i], w, ": token ", i, " has ",
              o[i + 1] - o[i], " alternatives but without_total ", tr.without_total[i]);
    int64_t correct = 0;
    for (int64_t k = o[i]; k < o[i + 1]; ++k) {
      CTM_CHECK(tr.alt_correct[k] == 0 || tr.alt_correct[k] == 1, w, ": alt_correct[", k, "] is ",
                int{tr.alt_correct[k]});
      correct += tr.alt_correct[k];
    }
    CTM_CHECK(correct == tr.without_correct[i], w, ": token ", i, ": ", correct,
              " correct alternatives but without_correct ", tr.without_correct[i]);
  }
}

void check_trajectory(const Trajectory& tr, const std::string& w) {
  const size_t n = tr.token_ids.size();
  CTM_CHECK(n <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), w, ": ", n, " tokens");
  CTM_CHECK(tr.response_start >= 0 && static_cast<size_t>(tr.response_start) <= n, w, ": response_start ",
            tr.response_start, " outside [0, ", n, "]");
  CTM_CHECK(tr.critical_position >= -1 && tr.critical_position < static_cast<int64_t>(n), w,
            ": critical_position ", tr.critical_position, " outside [-1, ", n, ")");
  check_counts(tr.with_correct, tr.with_total, n, w + " with");
  check_counts(tr.without_correct, tr.without_total, n, w + " without");
  check_alternatives(tr, w);
  h5::check_text(tr.question, w + " question");
  CTM_CHECK(parse_json(tr.answer, w + " answer").is_array(), w, ": answer is not a JSON list: ", tr.answer);
  h5::check_text(tr.answer, w + " answer");
}

template <class T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

struct RolloutColumns {
  std::vector<int32_t> token_ids, response_start, pair_index, alt_token_ids, critical;
  std::vector<int64_t> offsets, alt_offsets;
  std::vector<int16_t> with_correct, with_total, without_correct, without_total;
  std::vector<int8_t> alt_correct;
  std::vector<std::string> question, answer;

  void add(const Trajectory& tr) {
    offsets.push_back(static_cast<int64_t>(token_ids.size()));
    append(token_ids, tr.token_ids);
    response_start.push_back(tr.response_start);
    pair_index.push_back(tr.pair_index);
    critical.push_back(tr.critical_position);
    question.push_back(tr.question);
    answer.push_back(tr.answer);
    append(with_correct, tr.with_correct);
    append(with_total, tr.with_total);
    append(without_correct, tr.without_correct);
    append(without_total, tr.without_total);
    const auto base = static_cast<int64_t>(alt_token_ids.size());
    for (size_t i = 0; i < tr.token_ids.size(); ++i)
      alt_offsets.push_back(base + (tr.alt_offsets.empty() ? 0 : tr.alt_offsets[i]));
    append(alt_token_ids, tr.alt_token_ids);
    append(alt_correct, tr.alt_correct);
  }

  void move_into(FlatFile& f) {
    f.columns.push_back({"trajectories/token_ids", std::move(token_ids), ""});
    f.columns.push_back({"trajectories/offsets", std::move(offsets), "trajectories/token_ids"});
    f.columns.push_back({"trajectories/response_start", std::move(response_start), ""});
    f.columns.push_back({"trajectories/pair_index", std::move(pair_index), ""});
    f.columns.push_back({"with/correct", std::move(with_correct), ""});
    f.columns.push_back({"with/total", std::move(with_total), ""});
    f.columns.push_back({"without/correct", std::move(without_correct), ""});
    f.columns.push_back({"without/total", std::move(without_total), ""});
    f.columns.push_back({"without/alt_token_ids", std::move(alt_token_ids), ""});
    f.columns.push_back({"without/alt_offsets", std::move(alt_offsets), "without/alt_token_ids"});
    f.columns.push_back({"without/alt_correct", std::move(alt_correct), ""});
    f.columns.push_back({"critical/position", std::move(critical), ""});
    f.strings.push_back({"trajectories/question", std::move(question)});
    f.strings.push_back({"trajectories/answer", std::move(answer)});
  }
};

std::vector<Attr> rollout_attrs(const Rollouts& r) {
  CTM_CHECK(r.seed <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "seed ", r.seed,
            " does not fit the int64 seed attribute");
  std::vector<Attr> a = header_attrs(kRolloutsFormat, kRolloutsVersion, r.run);
  a.push_back({"t", r.t});
  a.push_back({"top_p", r.top_p});
  a.push_back({"rollouts_per_position", r.rollouts_per_position});
  a.push_back({"search", r.search});
  a.push_back({"seed", static_cast<int64_t>(r.seed)});
  return a;
}

}  // namespace

bool Trajectory::operator==(const Trajectory& o) const {
  return question == o.question && answer == o.answer && pair_index == o.pair_index &&
         token_ids == o.token_ids && response_start == o.response_start && with_correct == o.with_correct &&
         with_total == o.with_total && without_correct == o.without_correct &&
         without_total == o.without_total && alt_offsets == o.alt_offsets &&
         alt_token_ids == o.alt_token_ids && alt_correct == o.alt_correct &&
         critical_position == o.critical_position;
}

FlatFile rollouts_flat(const Rollouts& r, int64_t first) {
  FlatFile f;
  f.attrs = rollout_attrs(r);
  RolloutColumns c;
  for (size_t i = 0; i < r.trajectories.size(); ++i) {
    check_trajectory(r.trajectories[i], str("trajectory ", first + static_cast<int64_t>(i)));
    c.add(r.trajectories[i]);
  }
  c.move_into(f);
  return f;
}

void write_rollouts(const std::string& path, const Rollouts& r, const h5::Storage& storage) {
  write_flat_file(path, rollouts_flat(r), storage);
}

namespace {

// Trajectory t's slices of the flat arrays that read_rollouts has read.
struct RolloutArrays {
  std::vector<int32_t> ids, rs, pair_index, alt_ids, critical;
  std::vector<int64_t> offsets, alt_offsets;
  std::vector<int16_t> wc, wt, oc, ot;
  std::vector<int8_t> alt_correct;

  Trajectory trajectory(int64_t t, const std::string& file) const {
    Trajectory tr;
    const int64_t b = offsets[t], e = offsets[t + 1], ab = alt_offsets[b], ae = alt_offsets[e];
    CTM_CHECK(rs[t] >= 0 && rs[t] <= e - b, "'", file, "' trajectory ", t, ": response_start ", rs[t],
              " outside [0, ", e - b, "]");
    CTM_CHECK(critical[t] >= -1 && critical[t] < e - b, "'", file, "' trajectory ", t, ": critical position ",
              critical[t], " outside [-1, ", e - b, ")");
    tr.token_ids = slice(ids, b, e);
    tr.response_start = rs[t];
    tr.pair_index = pair_index[t];
    tr.with_correct = slice(wc, b, e);
    tr.with_total = slice(wt, b, e);
    tr.without_correct = slice(oc, b, e);
    tr.without_total = slice(ot, b, e);
    tr.alt_offsets = slice(alt_offsets, b, e + 1);
    for (auto& o : tr.alt_offsets) o -= ab;
    tr.alt_token_ids = slice(alt_ids, ab, ae);
    tr.alt_correct = slice(alt_correct, ab, ae);
    tr.critical_position = critical[t];
    return tr;
  }
};

}  // namespace

Rollouts read_rollouts(const std::string& path) {
  const h5::File f = h5::File::open(path);
  Rollouts r;
  r.run = read_header(f, kRolloutsFormat, kRolloutsVersion);
  r.t = f.double_attr("t");
  r.top_p = f.double_attr("top_p");
  r.rollouts_per_position = f.int_attr("rollouts_per_position");
  r.search = f.string_attr("search");
  r.seed = static_cast<uint64_t>(f.int_attr("seed"));

  std::vector<std::string> question = f.read_strings("trajectories/question");
  const auto T = static_cast<int64_t>(question.size());
  std::vector<std::string> answer = read_strings_exact(f, "trajectories/answer", T);
  RolloutArrays a;
  a.ids = f.read<int32_t>("trajectories/token_ids");
  const auto N = static_cast<int64_t>(a.ids.size());
  a.offsets = read_offsets(f, "trajectories/offsets", T, N);
  a.rs = read_exact<int32_t>(f, "trajectories/response_start", T);
  a.pair_index = read_exact<int32_t>(f, "trajectories/pair_index", T);
  a.critical = read_exact<int32_t>(f, "critical/position", T);
  a.wc = read_exact<int16_t>(f, "with/correct", N);
  a.wt = read_exact<int16_t>(f, "with/total", N);
  a.oc = read_exact<int16_t>(f, "without/correct", N);
  a.ot = read_exact<int16_t>(f, "without/total", N);
  a.alt_ids = f.read<int32_t>("without/alt_token_ids");
  const auto M = static_cast<int64_t>(a.alt_ids.size());
  a.alt_offsets = read_offsets(f, "without/alt_offsets", N, M);
  a.alt_correct = read_exact<int8_t>(f, "without/alt_correct", M);

  r.trajectories.reserve(question.size());
  for (int64_t t = 0; t < T; ++t) {
    r.trajectories.push_back(a.trajectory(t, path));
    r.trajectories.back().question = std::move(question[t]);
    r.trajectories.back().answer = std::move(answer[t]);
  }
  return r;
}

}  // namespace ctm::io
