// The encoding pipeline, as Hugging Face runs it: added tokens on the raw text, normalizer, added tokens on
// the normalized text, pre-tokenizers (each piece split further, stage by stage), the BPE model on every
// piece (with a per-thread word cache), then the post-processor's special tokens.
#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <utility>

#include "ctm/core/error.hpp"
#include "tokenizer_impl.hpp"
#include "utf8.hpp"

namespace ctm::text::detail {

namespace {

// Characters below U+0300 and CJK unified ideographs are unchanged by NFC and never combine with what
// precedes them: text made only of those needs no NFC pass.
bool nfc_trivially(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const uint32_t cp = utf8_next(s, i);
    if (cp >= 0x300 && !(cp >= 0x4E00 && cp <= 0x9FFF)) return false;
  }
  return true;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

std::string unicode_normalize(std::string_view s, int options) {
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
  if (n < 0) throw Error(str("Unicode normalization failed: ", utf8proc_errmsg(n)));
  std::string out(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}

std::string replace_all(const Regex& re, std::string_view s, std::string_view with) {
  std::string out;
  size_t prev = 0;
  re.for_each_match(s, [&](size_t b, size_t e) {
    out.append(s.substr(prev, b - prev));
    out.append(with);
    prev = e;
  });
  out.append(s.substr(prev));
  return out;
}

struct Flagged {
  size_t start, end;
  bool is_match;
};

// Hugging Face's NormalizedString::split: which ranges survive, merged as the behavior says.
void apply_behavior(Behavior behavior, std::vector<Flagged>& r) {
  switch (behavior) {
    case Behavior::Isolated:
      for (Flagged& f : r) f.is_match = false;
      return;
    case Behavior::Removed:
      return;  // drop the matches
    case Behavior::Contiguous:
    case Behavior::MergedWithPrevious: {
      std::vector<Flagged> out;
      bool previous_match = false;
      for (const Flagged& f : r) {
        const bool merge =
            behavior == Behavior::Contiguous ? f.is_match == previous_match : f.is_match && !previous_match;
        if (merge && !out.empty()) {
          out.back().end = f.end;
        } else {
          out.push_back(Flagged{f.start, f.end, false});
        }
        previous_match = f.is_match;
      }
      r.swap(out);
      return;
    }
    case Behavior::MergedWithNext: {
      std::vector<Flagged> out;
      bool previous_match = false;
      for (size_t k = r.size(); k-- > 0;) {
        const Flagged& f = r[k];
        if (f.is_match && !previous_match && !out.empty()) {
          out.back().start = f.start;
        } else {
          out.push_back(Flagged{f.start, f.end, false});
        }
        previous_match = f.is_match;
      }
      r.assign(out.rbegin(), out.rend());
      return;
    }
  }
}

struct Scratch {
  std::vector<AddedTokenMatcher::Piece> raw, normalized;
  std::vector<std::vector<Flagged>> ranges;  // one per pre-tokenizer stage
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// One word cache per thread and tokenizer (the last few tokenizers used on this thread).
WordCache& cache_for(uint64_t instance) {
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<WordCache>>> caches;
  for (auto& c : caches)
    if (c.first == instance) return *c.second;
  if (caches.size() >= 4) caches.erase(caches.begin());
  caches.emplace_back(instance, std::make_unique<WordCache>());
  return *caches.back().second;
}

class Encoder {
 public:
  Encoder(const TokenizerImpl& t, std::vector<int32_t>& out)
      : t_(t), model_(t.model), cache_(cache_for(t.instance)), sc_(scratch()), out_(out) {
    if (sc_.ranges.size() < t.pre_tokenizer.size()) sc_.ranges.resize(t.pre_tokenizer.size());
  }

  void encode(std::string_view text) {
    t_.raw_matcher.find_pieces(text, sc_.raw);
    for (const auto& p : sc_.raw) {
      if (p.id >= 0) {
        out_.push_back(p.id);
        continue;
      }
      const std::string_view piece = text.substr(p.start, p.end - p.start);
      if (piece.empty()) continue;
      if (t_.normalizer.empty()) {
        normalized(piece);
      } else {
        const std::string n = t_.normalize(piece);
        normalized(n);
      }
    }
  }

 private:
  void normalized(std::string_view s) {
    if (t_.normalized_matcher.empty()) {
      stage(0, s);
      return;
    }
    t_.normalized_matcher.find_pieces(s, sc_.normalized);
    for (const auto& p : sc_.normalized) {
      if (p.id >= 0) {
        out_.push_back(p.id);
      } else {
        stage(0, s.substr(p.start, p.end - p.start));
      }
    }
  }

  void stage(size_t k, std::string_view piece) {
    if (piece.empty()) return;
    if (k == t_.pre_tokenizer.size()) {
      word(piece);
      return;
    }
    const PreTokenizerStep& st = t_.pre_tokenizer[k];
    switch (st.kind) {
      case PreTokenizerStep::ByteLevel:
        if (st.add_prefix_space && piece[0] != ' ') {
          std::string spaced;
          spaced.reserve(piece.size() + 1);
          spaced.push_back(' ');
          spaced.append(piece);
          byte_level(k, st, spaced);
        } else {
          byte_level(k, st, piece);
        }
        return;
      case PreTokenizerStep::Split:
        if (st.behavior == Behavior::Isolated) {  // the common case, without building the range list
          if (st.fast != FastPattern::None) {
            size_t prev = 0, s = 0, e = 0;
            while (fast_search(st.fast, piece, prev, s, e)) {
              if (s > prev) stage(k + 1, piece.substr(prev, s - prev));
              stage(k + 1, piece.substr(s, e - s));
              prev = e;
            }
            if (prev < piece.size()) stage(k + 1, piece.substr(prev));
          } else {
            isolated(k, *st.regex, piece);
          }
          return;
        }
        split(k, st, piece);
        return;
      case PreTokenizerStep::Digits:
        digits(k, st, piece);
        return;
    }
  }

  void byte_level(size_t k, const PreTokenizerStep& st, std::string_view piece) {
    if (st.regex) {
      isolated(k, *st.regex, piece);
    } else {
      stage(k + 1, piece);
    }
  }

  // Every match and every gap between matches is a piece (Isolated; invert makes no difference).
  void isolated(size_t k, const Regex& re, std::string_view piece) {
    size_t prev = 0;
    re.for_each_match(piece, [&](size_t s, size_t e) {
      if (s > prev) stage(k + 1, piece.substr(prev, s - prev));
      stage(k + 1, piece.substr(s, e - s));
      prev = e;
    });
    if (prev < piece.size()) stage(k + 1, piece.substr(prev));
  }

  void split(size_t k, const PreTokenizerStep& st, std::string_view piece) {
    std::vector<Flagged>& r = sc_.ranges[k];
    r.clear();
    size_t prev = 0;
    st.regex->for_each_match(piece, [&](size_t s, size_t e) {
      if (s != prev) r.push_back(Flagged{prev, s, st.invert});
      r.push_back(Flagged{s, e, !st.invert});
      prev = e;
    });
    if (prev != piece.size()) r.push_back(Flagged{prev, piece.size(), st.invert});
    forward(k, st.behavior, piece, r);
  }

  void digits(size_t k, const PreTokenizerStep& st, std::string_view piece) {
    std::vector<Flagged>& r = sc_.ranges[k];
    r.clear();
    size_t last = 0;
    for (size_t i = 0; i < piece.size();) {
      const size_t start = i;
      if (is_numeric(utf8_next(piece, i))) {
        if (last < start) r.push_back(Flagged{last, start, false});
        r.push_back(Flagged{start, i, true});
        last = i;
      }
    }
    if (last < piece.size()) r.push_back(Flagged{last, piece.size(), false});
    forward(k, st.individual_digits ? Behavior::Isolated : Behavior::Contiguous, piece, r);
  }

  void forward(size_t k, Behavior behavior, std::string_view piece, std::vector<Flagged>& r) {
    apply_behavior(behavior, r);
    for (size_t i = 0; i < r.size(); ++i) {
      // stage(k + 1) never touches ranges[k], so r stays valid.
      if (!r[i].is_match) stage(k + 1, piece.substr(r[i].start, r[i].end - r[i].start));
    }
  }

  void word(std::string_view w) {
    if (model_.byte_level && w.size() == 1) {
      const int32_t id = model_.byte_ids[static_cast<unsigned char>(w[0])];
      if (id >= 0) {
        out_.push_back(id);
        return;
      }
    }
    if (w.size() > WordCache::kMaxWordBytes) {
      model_.encode_word(w, out_);
      return;
    }
    const uint64_t h = hash_bytes(w.data(), w.size());
    if (cache_.find(w, h, out_)) return;
    const size_t before = out_.size();
    model_.encode_word(w, out_);
    cache_.insert(w, h, out_.data() + before, out_.size() - before);
  }

  const TokenizerImpl& t_;
  const BpeModel& model_;
  WordCache& cache_;
  Scratch& sc_;
  std::vector<int32_t>& out_;
};

}  // namespace

std::string TokenizerImpl::normalize(std::string_view s) const {
  std::string cur(s);
  for (const NormalizerStep& step : normalizer) {
    switch (step.kind) {
      case NormalizerStep::NFC:
        if (!nfc_trivially(cur)) cur = unicode_normalize(cur, UTF8PROC_COMPOSE);
        break;
      case NormalizerStep::NFD:
        if (!is_ascii(cur)) cur = unicode_normalize(cur, UTF8PROC_DECOMPOSE);
        break;
      case NormalizerStep::NFKC:
        if (!is_ascii(cur)) cur = unicode_normalize(cur, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case NormalizerStep::NFKD:
        if (!is_ascii(cur)) cur = unicode_normalize(cur, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case NormalizerStep::Prepend:
        if (!cur.empty()) cur.insert(0, step.text);
        break;
      case NormalizerStep::Replace:
        cur = replace_all(*step.regex, cur, step.text);
        break;
      case NormalizerStep::Strip: {
        size_t b = 0, e = cur.size();
        if (step.strip_left) {
          while (b < e) {
            size_t j = b;
            if (!is_white_space(utf8_next(cur, j))) break;
            b = j;
          }
        }
        if (step.strip_right) {
          while (e > b) {
            size_t start;
            if (!is_white_space(utf8_prev(cur, e, start))) break;
            e = start;
          }
        }
        cur = cur.substr(b, e - b);
        break;
      }
    }
  }
  return cur;
}

void TokenizerImpl::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out) const {
  const size_t bad = utf8_invalid_offset(text);
  if (bad != std::string_view::npos) {
    throw Error(
        str(where, ": cannot encode text that is not valid UTF-8 (byte ", bad, " of ", text.size(), ")"));
  }
  if (add_special_tokens) out.insert(out.end(), prefix_ids.begin(), prefix_ids.end());
  Encoder(*this, out).encode(text);
  if (add_special_tokens) out.insert(out.end(), suffix_ids.begin(), suffix_ids.end());
}

std::string replace_all_matches(const Regex& re, std::string_view s, std::string_view with) {
  return replace_all(re, s, with);
}

}  // namespace ctm::text::detail
