#include "ctm/train/lm_data.hpp"

#include <numeric>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/data/prompt.hpp"

namespace ctm::train {
namespace {

// Splits "Question: " into ("Question:", " "): the trailing whitespace of a prefix belongs to what follows
// it, as the stripped prompt ends in "Answer:" and the model's first token carries the space.
std::pair<std::string, std::string> split_trailing_space(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\n' || s[end - 1] == '\t')) --end;
  return {s.substr(0, end), s.substr(end)};
}

}  // namespace

LmExample tokenize_pieces(const text::Tokenizer& tok, const std::vector<TextPiece>& pieces, bool add_bos) {
  std::string text;
  std::vector<uint8_t> byte_is_target;
  for (const auto& p : pieces) {
    text += p.text;
    byte_is_target.insert(byte_is_target.end(), p.text.size(), p.is_target ? 1 : 0);
  }
  LmExample ex;
  if (add_bos) {
    const auto bos = tok.bos_id();
    CTM_CHECK(bos.has_value(), "the tokenizer has no BOS token");
    ex.tokens.push_back(*bos);
    ex.is_target.push_back(0);
  }
  size_t offset = 0;
  for (int32_t id : tok.encode(text, /*add_special_tokens=*/false)) {
    const auto bytes = tok.token_bytes(id);
    CTM_CHECK(bytes.has_value(), "the tokenizer's decoder does not map tokens to bytes one by one (token ",
              id, "); loss masks need a byte-level tokenizer");
    ex.tokens.push_back(id);
    ex.is_target.push_back(offset < byte_is_target.size() ? byte_is_target[offset] : 0);
    offset += bytes->size();
  }
  CTM_CHECK(offset == text.size(), "tokens of a training text decode to ", offset, " bytes, not ",
            text.size());
  return ex;
}

std::vector<TextPiece> qa_pieces(data::DatasetKind kind, const data::Problem& problem, bool first) {
  CTM_CHECK(!problem.solution.empty(), "problem '", problem.id, "' has no worked solution to train on");
  const auto fmt = data::prompt_format(kind);
  const auto [q_word, q_space] = split_trailing_space(fmt.question_prefix);  // "Question:", " "
  const auto [a_word, a_space] = split_trailing_space(fmt.answer_prefix);    // "\nAnswer:", " "
  return {{q_word, !first},
          {q_space + problem.question + a_word, false},
          {a_space + problem.solution, true},
          {"\n\n", true}};
}

std::vector<LmExample> pack_qa_sequences(const std::vector<data::Problem>& problems, data::DatasetKind kind,
                                         const text::Tokenizer& tok, const PackOptions& opts, uint64_t seed,
                                         int64_t* skipped) {
  CTM_CHECK(opts.max_tokens > 0, "sequence length ", opts.max_tokens, " must be positive");
  std::vector<size_t> order(problems.size());
  std::iota(order.begin(), order.end(), 0);
  Rng rng(mix_seed(seed, 0, 0));
  rng.shuffle(order);

  const auto fmt = data::prompt_format(kind);
  const TextPiece closing{fmt.question_prefix.substr(0, fmt.question_prefix.find_last_not_of(" \n\t") + 1),
                          true};
  std::vector<LmExample> sequences;
  std::vector<TextPiece> pieces;
  int64_t est_tokens = 0, count = 0, n_skipped = 0;
  auto flush = [&] {
    if (count == 0) return;
    pieces.push_back(closing);
    auto ex = tokenize_pieces(tok, pieces);
    // Whole-text tokenization can only merge across boundaries, so it is rarely longer than the estimate; if
    // it is, the sequence is cut (the cut tokens are a tail of the last example).
    if (static_cast<int64_t>(ex.tokens.size()) > opts.max_tokens) {
      ex.tokens.resize(opts.max_tokens);
      ex.is_target.resize(opts.max_tokens);
    }
    sequences.push_back(std::move(ex));
    pieces.clear();
    est_tokens = 0;
    count = 0;
  };
  const int64_t closing_tokens = static_cast<int64_t>(tok.encode(closing.text, false).size());
  for (size_t i : order) {
    auto example = qa_pieces(kind, problems[i], /*first=*/count == 0);
    std::string text;
    for (const auto& p : example) text += p.text;
    const int64_t n = static_cast<int64_t>(tok.encode(text, false).size());
    if (n + closing_tokens > opts.max_tokens) {
      ++n_skipped;
      continue;
    }
    const bool full = (opts.max_examples > 0 && count >= opts.max_examples) ||
                      est_tokens + n + closing_tokens > opts.max_tokens;
    if (full) {
      flush();
      example = qa_pieces(kind, problems[i], /*first=*/true);
    }
    pieces.insert(pieces.end(), example.begin(), example.end());
    est_tokens += n;
    ++count;
  }
  flush();
  if (skipped) *skipped = n_skipped;
  return sequences;
}

namespace {
// The end both example builders share: an EOS target when asked, then the cap on the length.
LmExample finish_example(const text::Tokenizer& tok, LmExample ex, bool add_eos, int64_t max_tokens) {
  if (add_eos) {
    const auto eos = tok.eos_id();
    CTM_CHECK(eos.has_value(), "the tokenizer has no EOS token");
    ex.tokens.push_back(*eos);
    ex.is_target.push_back(1);
  }
  if (max_tokens > 0 && static_cast<int64_t>(ex.tokens.size()) > max_tokens) {
    ex.tokens.resize(static_cast<size_t>(max_tokens));
    ex.is_target.resize(static_cast<size_t>(max_tokens));
  }
  return ex;
}

}  // namespace

LmExample completion_example(const text::Tokenizer& tok, const std::string& prompt,
                             const std::string& completion, bool add_eos, int64_t max_tokens) {
  LmExample ex;
  ex.tokens = tok.encode(prompt, false);
  ex.is_target.assign(ex.tokens.size(), 0);
  for (int32_t id : tok.encode(completion, false)) {
    ex.tokens.push_back(id);
    ex.is_target.push_back(1);
  }
  return finish_example(tok, std::move(ex), add_eos, max_tokens);
}

bool tokenizer_adds_bos(const text::Tokenizer& tok) {
  const auto bos = tok.bos_id();
  if (!bos) return false;
  const auto ids = tok.encode("x", /*add_special_tokens=*/true);
  return !ids.empty() && ids.front() == *bos;
}

std::optional<LmExample> response_example(const text::Tokenizer& tok, const std::string& text,
                                          const std::string& marker, bool add_eos, int64_t max_tokens) {
  const size_t at = text.rfind(marker);
  if (at == std::string::npos || at + marker.size() >= text.size()) return std::nullopt;
  const size_t cut = at + marker.size();
  LmExample ex =
      tokenize_pieces(tok, {{text.substr(0, cut), false}, {text.substr(cut), true}}, tokenizer_adds_bos(tok));
  return finish_example(tok, std::move(ex), add_eos, max_tokens);
}

}  // namespace ctm::train
