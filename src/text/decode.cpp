// Decoding: added tokens are written as they are; runs of model tokens go through the decoder chain of
// tokenizer.json. Bytes are kept exact (no U+FFFD for incomplete characters, no clean-up of spaces).
#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/text/tokenizer.hpp"
#include "tokenizer_impl.hpp"
#include "utf8.hpp"

namespace ctm::text {

namespace detail {

namespace {

std::string join(const std::vector<std::string>& tokens, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += sep;
    out += tokens[i];
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A byte that does not begin a valid UTF-8 character: one "character" that equals no code point.
constexpr uint32_t kNotACharacter = 0xFFFFFFFF;

// Hugging Face's Strip decoder, including its quirk of counting the kept characters in bytes. The token may
// hold bytes that are not UTF-8 (ByteFallback keeps them as they are, and an incremental decode ends inside a
// character): each such byte counts as one character that is never stripped.
std::string strip_token(const std::string& token, uint32_t ch, size_t start, size_t stop) {
  std::vector<uint32_t> chars;
  std::vector<size_t> offsets;
  for (size_t i = 0; i < token.size();) {
    offsets.push_back(i);
    const size_t len = utf8_len(static_cast<unsigned char>(token[i]));
    if (i + len <= token.size() &&
        utf8_invalid_offset(std::string_view(token).substr(i, len)) == std::string_view::npos) {
      chars.push_back(utf8_next(token, i));
    } else {
      chars.push_back(kNotACharacter);
      ++i;
    }
  }
  offsets.push_back(token.size());
  size_t start_cut = 0, stop_cut = 0;
  while (start_cut < chars.size() && start_cut < start && chars[start_cut] == ch) ++start_cut;
  while (stop_cut < chars.size() && stop_cut < stop && chars[chars.size() - 1 - stop_cut] == ch) ++stop_cut;
  const size_t cut = start_cut + stop_cut;
  size_t take = cut >= token.size() ? SIZE_MAX : token.size() - cut;  // Rust's usize subtraction wraps
  take = std::min(take, chars.size() - std::min(start_cut, chars.size()));
  return token.substr(offsets[start_cut], offsets[start_cut + take] - offsets[start_cut]);
}

}  // namespace

std::vector<std::string> TokenizerImpl::run_decoder(std::vector<std::string> tokens) const {
  if (!has_decoder) return {join(tokens, " ")};
  for (const DecoderStep& step : decoder) {
    switch (step.kind) {
      case DecoderStep::ByteLevel: {
        std::string joined;
        for (const std::string& t : tokens) {
          if (auto bytes = byte_level_map().to_bytes(t)) {
            joined += *bytes;
          } else {
            joined += t;
          }
        }
        tokens.assign(1, std::move(joined));
        break;
      }
      case DecoderStep::ByteFallback: {
        // Consecutive <0xXX> tokens become their bytes (kept as they are, even when not valid UTF-8).
        std::vector<std::string> out;
        std::string bytes;
        bool in_bytes = false;
        for (std::string& t : tokens) {
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex_value(t[3]) >= 0 &&
              hex_value(t[4]) >= 0) {
            bytes.push_back(static_cast<char>(hex_value(t[3]) * 16 + hex_value(t[4])));
            in_bytes = true;
            continue;
          }
          if (in_bytes) out.push_back(std::move(bytes)), bytes.clear(), in_bytes = false;
          out.push_back(std::move(t));
        }
        if (in_bytes) out.push_back(std::move(bytes));
        tokens.swap(out);
        break;
      }
      case DecoderStep::Fuse:
        tokens.assign(1, join(tokens, ""));
        break;
      case DecoderStep::Strip: {
        size_t i = 0;
        const uint32_t ch = utf8_next(step.text, i);
        for (std::string& t : tokens) t = strip_token(t, ch, step.strip_start, step.strip_stop);
        break;
      }
      case DecoderStep::Replace:
        for (std::string& t : tokens) t = replace_all_matches(*step.regex, t, step.text);
        break;
    }
  }
  return tokens;
}

std::string TokenizerImpl::decode(const std::vector<int32_t>& ids) const {
  for (int32_t id : ids) check_id(id);
  std::string out;
  if (per_token_decoder) {
    for (int32_t id : ids)
      out.append(token_bytes_arena, token_bytes_off[id], token_bytes_off[id + 1] - token_bytes_off[id]);
    return out;
  }
  if (!has_decoder) {
    std::vector<std::string> tokens;
    for (int32_t id : ids) tokens.emplace_back(token(id));
    return join(tokens, " ");
  }
  std::vector<std::string> run;
  auto flush = [&] {
    if (run.empty()) return;
    for (const std::string& s : run_decoder(std::move(run))) out += s;
    run.clear();
  };
  for (int32_t id : ids) {
    if (added_index[id] >= 0) {
      flush();
      out += added[added_index[id]].content;
    } else {
      run.emplace_back(token(id));
    }
  }
  flush();
  return out;
}

}  // namespace detail

size_t utf8_complete_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  // Look back at most 3 bytes for the lead byte of a character that is still missing continuation bytes.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(bytes[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
    if (b >= 0xC0 && detail::utf8_len(b) > back) return n - back;
    return n;
  }
  return n;
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok)
    : tok_(tok), per_token_(tok.impl().per_token_decoder) {}

std::string IncrementalDecoder::push(int32_t id) {
  const detail::TokenizerImpl& t = tok_.impl();
  if (per_token_) {
    t.check_id(id);
    pending_.append(t.token_bytes_arena, t.token_bytes_off[id],
                    t.token_bytes_off[id + 1] - t.token_bytes_off[id]);
    const size_t n = utf8_complete_prefix(pending_);
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }
  // Decoders that see the whole sequence: decode everything again and return what is new.
  ids_.push_back(id);
  const std::string full = t.decode(ids_);
  const std::string_view rest = std::string_view(full).substr(std::min(emitted_, full.size()));
  const size_t n = utf8_complete_prefix(rest);
  emitted_ += n;
  return std::string(rest.substr(0, n));
}

std::string IncrementalDecoder::flush() {
  if (per_token_) {
    std::string out;
    out.swap(pending_);
    return out;
  }
  const std::string full = tok_.impl().decode(ids_);
  std::string out = full.substr(std::min(emitted_, full.size()));
  emitted_ = full.size();
  return out;
}

}  // namespace ctm::text
