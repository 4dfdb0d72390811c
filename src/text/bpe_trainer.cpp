// Byte-level BPE training (the algorithm of Hugging Face's BpeTrainer): count the words the pre-tokenizer
// makes, then repeatedly merge the most frequent adjacent pair (ties: the smallest pair of ids), updating
// only the words that hold it. Pair counts sit in a lazy max-heap: an entry whose count is stale is re-queued
// with the current one.
#include "ctm/text/bpe_trainer.hpp"

#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>

#include "ctm/core/error.hpp"
#include "regex.hpp"
#include "tokenizer_impl.hpp"
#include "utf8.hpp"

namespace ctm::text {

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kSingleDigitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

using Pair = uint64_t;
Pair make_pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(Pair p) {
  return static_cast<int32_t>(p >> 32);
}
int32_t pair_right(Pair p) {
  return static_cast<int32_t>(p & 0xFFFFFFFFu);
}

struct Word {
  std::vector<int32_t> units;
  int64_t count;
};

struct Candidate {
  int64_t count;
  Pair pair;
  // Max-heap order: more frequent first, then the smaller pair (left id, then right id).
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

std::vector<std::string> all_special_tokens(const BpeTrainerOptions& opts) {
  std::vector<std::string> out;
  auto add = [&](const std::string& t) {
    if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const std::string& t : opts.special_tokens) add(t);
  add(opts.bos_token);
  add(opts.eos_token);
  return out;
}

Json special_token_item(const std::string& name, int type_id) {
  return Json{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
}

Json sequence_item(const char* which, int type_id) {
  return Json{{"Sequence", {{"id", which}, {"type_id", type_id}}}};
}

}  // namespace

Json train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& opts) {
  const std::vector<std::string> specials = all_special_tokens(opts);
  CTM_CHECK(opts.vocab_size >= 256 + static_cast<int32_t>(specials.size()), "BPE training: vocab_size ",
            opts.vocab_size, " is below the 256 byte tokens plus ", specials.size(), " special tokens");
  if (opts.add_bos_token) CTM_CHECK(!opts.bos_token.empty(), "BPE training: add_bos_token needs a bos_token");
  const int32_t model_size = opts.vocab_size - static_cast<int32_t>(specials.size());
  const char* pattern = opts.split_digits ? kSingleDigitPattern : kLlama3Pattern;

  // Words and their counts, sorted so that the result does not depend on hash order.
  const detail::Regex regex(pattern, false, "BPE training pre-tokenizer");
  std::unordered_map<std::string, int64_t> counts;
  for (size_t t = 0; t < texts.size(); ++t) {
    const std::string& text = texts[t];
    const size_t bad = detail::utf8_invalid_offset(text);
    CTM_CHECK(bad == std::string::npos, "BPE training: text ", t, " is not valid UTF-8 (byte ", bad, ")");
    size_t prev = 0;
    regex.for_each_match(text, [&](size_t s, size_t e) {
      if (s > prev) ++counts[text.substr(prev, s - prev)];
      if (e > s) ++counts[text.substr(s, e - s)];
      prev = e;
    });
    if (prev < text.size()) ++counts[text.substr(prev)];
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [w, c] : sorted) {
    Word word{{}, c};
    for (unsigned char b : w) word.units.push_back(b);
    words.push_back(std::move(word));
  }

  // Vocabulary: the 256 bytes (id = byte value), then one token per merge that makes a new string.
  std::vector<std::string> vocab;  // id -> bytes
  std::unordered_map<std::string, int32_t> vocab_ids;
  for (int b = 0; b < 256; ++b) {
    vocab.emplace_back(1, static_cast<char>(b));
    vocab_ids.emplace(vocab.back(), b);
  }

  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::vector<int32_t>>
      where;  // words that held the pair (may be stale or repeated)
  for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w) {
    const Word& word = words[w];
    for (size_t i = 0; i + 1 < word.units.size(); ++i) {
      const Pair p = make_pair_key(word.units[i], word.units[i + 1]);
      pair_counts[p] += word.count;
      auto& list = where[p];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [p, c] : pair_counts) heap.push({c, p});

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::unordered_map<Pair, int64_t> delta;
  while (static_cast<int32_t>(vocab.size()) < model_size && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const auto it = pair_counts.find(top.pair);
    const int64_t current = it == pair_counts.end() ? 0 : it->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current <= 0) continue;
    const int32_t a = pair_left(top.pair), b = pair_right(top.pair);
    const std::string merged = vocab[a] + vocab[b];
    int32_t new_id;
    if (auto found = vocab_ids.find(merged); found != vocab_ids.end()) {
      new_id = found->second;
    } else {
      new_id = static_cast<int32_t>(vocab.size());
      vocab.push_back(merged);
      vocab_ids.emplace(merged, new_id);
    }
    merges.emplace_back(a, b);

    std::vector<int32_t> affected = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    delta.clear();
    for (int32_t w : affected) {
      Word& word = words[w];
      std::vector<int32_t>& u = word.units;
      bool holds = false;
      for (size_t i = 0; i + 1 < u.size() && !holds; ++i) holds = u[i] == a && u[i + 1] == b;
      if (!holds) continue;
      for (size_t i = 0; i + 1 < u.size(); ++i) delta[make_pair_key(u[i], u[i + 1])] -= word.count;
      std::vector<int32_t> next;
      next.reserve(u.size());
      for (size_t i = 0; i < u.size(); ++i) {
        if (i + 1 < u.size() && u[i] == a && u[i + 1] == b) {
          next.push_back(new_id);
          ++i;
        } else {
          next.push_back(u[i]);
        }
      }
      u.swap(next);
      for (size_t i = 0; i + 1 < u.size(); ++i) {
        const Pair p = make_pair_key(u[i], u[i + 1]);
        delta[p] += word.count;
        auto& list = where[p];
        if (list.empty() || list.back() != w) list.push_back(w);
      }
    }
    for (const auto& [p, d] : delta) {
      if (d == 0) continue;
      const int64_t c = (pair_counts[p] += d);
      if (c <= 0) {
        pair_counts.erase(p);
      } else if (d > 0) {
        heap.push({c, p});
      }
    }
  }

  // The tokenizer.json.
  const detail::ByteLevelMap& bl = detail::byte_level_map();
  Json vocab_json = Json::object();
  for (size_t id = 0; id < vocab.size(); ++id) vocab_json[bl.to_chars(vocab[id])] = id;
  // "a b" strings (byte-level tokens never hold a space): every version of the Hugging Face library reads
  // them.
  Json merges_json = Json::array();
  for (const auto& [a, b] : merges)
    merges_json.push_back(bl.to_chars(vocab[a]) + " " + bl.to_chars(vocab[b]));
  Json added = Json::array();
  std::map<std::string, int32_t> special_ids;
  for (size_t k = 0; k < specials.size(); ++k) {
    const auto id = static_cast<int32_t>(vocab.size() + k);
    special_ids[specials[k]] = id;
    added.push_back(Json{{"id", id},
                         {"content", specials[k]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}});
  }
  Json post =
      Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (opts.add_bos_token) {
    const std::string& bos = opts.bos_token;
    post = Json{{"type", "TemplateProcessing"},
                {"single", Json::array({special_token_item(bos, 0), sequence_item("A", 0)})},
                {"pair", Json::array({special_token_item(bos, 0), sequence_item("A", 0),
                                      special_token_item(bos, 1), sequence_item("B", 1)})},
                {"special_tokens", Json{{bos, Json{{"id", bos},
                                                   {"ids", Json::array({special_ids[bos]})},
                                                   {"tokens", Json::array({bos})}}}}}};
  }
  Json out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  out["added_tokens"] = std::move(added);
  out["normalizer"] = nullptr;
  out["pre_tokenizer"] = Json{{"type", "Sequence"},
                              {"pretokenizers", Json::array({Json{{"type", "Split"},
                                                                  {"pattern", {{"Regex", pattern}}},
                                                                  {"behavior", "Isolated"},
                                                                  {"invert", false}},
                                                             Json{{"type", "ByteLevel"},
                                                                  {"add_prefix_space", false},
                                                                  {"trim_offsets", true},
                                                                  {"use_regex", false}}})}};
  out["post_processor"] = std::move(post);
  out["decoder"] =
      Json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  out["model"] = Json{{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", std::move(vocab_json)},
                      {"merges", std::move(merges_json)}};
  return out;
}

Json make_tokenizer_config(const BpeTrainerOptions& opts) {
  Json c;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["bos_token"] = opts.bos_token.empty() ? Json(nullptr) : Json(opts.bos_token);
  c["eos_token"] = opts.eos_token.empty() ? Json(nullptr) : Json(opts.eos_token);
  c["add_bos_token"] = opts.add_bos_token;
  c["add_eos_token"] = false;
  c["clean_up_tokenization_spaces"] = false;
  return c;
}

}  // namespace ctm::text
