// The BPE model of tokenizer.json: a word's units (bytes after ByteLevel, else UTF-8 characters) are merged
// pair by pair, lowest merge rank first and leftmost first among equal ranks (Hugging Face's
// Word::merge_all).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hash.hpp"

namespace ctm::text::detail {

struct BpeModel {
  // Units are raw bytes (the pre-tokenizer ends with ByteLevel; `vocab` is then keyed by the bytes each token
  // stands for) or UTF-8 characters (`vocab` keyed by the tokens as written).
  bool byte_level = false;
  StringIdMap vocab{1024};
  int32_t byte_ids[256];  // byte_level: id of each single byte, -1 when missing
  PairMap merges;
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  int32_t unk_id =
      -1;  // -1: no unknown token (units not in the vocabulary are dropped, as Hugging Face does)
  int32_t byte_fallback_ids[256];  // <0xXX> tokens, -1 when missing

  // Appends the ids of one word (a pre-token) to out.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // Merges ids in place (two equivalent algorithms: a scan for short words, a heap for long ones).
  void merge(std::vector<int32_t>& ids) const;
  void merge_scan(std::vector<int32_t>& ids) const;
  void merge_heap(std::vector<int32_t>& ids) const;
};

// A word -> ids cache, one per thread and tokenizer; cleared when full.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kMaxEntries = 1 << 16;
  WordCache() { clear(); }
  // The cached ids of word, or false.
  bool find(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
    size_t i = hash & kMask;
    while (slots_[i].len != kEmpty) {
      const Slot& s = slots_[i];
      if (s.hash == hash && s.len == word.size() &&
          std::memcmp(bytes_.data() + s.bytes_offset, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.ids_count);
        return true;
      }
      i = (i + 1) & kMask;
    }
    return false;
  }
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
    if (size_ >= kMaxEntries) clear();
    size_t i = hash & kMask;
    while (slots_[i].len != kEmpty) i = (i + 1) & kMask;
    slots_[i] = Slot{hash, static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(word.size()),
                     static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
    bytes_.append(word.data(), word.size());
    ids_.insert(ids_.end(), ids, ids + count);
    ++size_;
  }
  void clear() {
    slots_.assign(kSlots, Slot{0, 0, kEmpty, 0, 0});
    bytes_.clear();
    ids_.clear();
    size_ = 0;
  }

 private:
  static constexpr size_t kSlots = kMaxEntries * 2;
  static constexpr size_t kMask = kSlots - 1;
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    uint64_t hash;
    uint32_t bytes_offset;
    uint32_t len;
    uint32_t ids_offset;
    uint32_t ids_count;
  };
  std::vector<Slot> slots_;
  std::string bytes_;
  std::vector<int32_t> ids_;
  size_t size_ = 0;
};

}  // namespace ctm::text::detail
