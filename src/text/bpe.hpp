// The BPE model of tokenizer.json: a word's units (bytes after ByteLevel, else UTF-8 characters) are merged
// pair by pair, lowest merge rank first and leftmost first among equal ranks (Hugging Face's
// Word::merge_all).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
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

// A word -> ids cache, one per thread and tokenizer; it grows from a few thousand slots and is cleared when
// full. Slots are 16 bytes so that the table stays in cache for ordinary texts.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kMaxEntries = 1 << 17;
  WordCache() { reset(4096); }
  // Appends the cached ids of word to out, or returns false.
  bool find(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
    const auto tag = static_cast<uint32_t>(hash >> 32);
    size_t i = hash & mask_;
    while (slots_[i].len != 0) {
      const Slot& s = slots_[i];
      if (s.tag == tag && s.len == word.size() &&
          std::memcmp(bytes_.data() + s.bytes_offset, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.ids_count);
        return true;
      }
      i = (i + 1) & mask_;
    }
    return false;
  }
  // word: 1..kMaxWordBytes bytes; count <= kMaxWordBytes.
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
    if (size_ >= kMaxEntries) {
      reset(slots_.size());
    } else if ((size_ + 1) * 2 > slots_.size()) {
      grow();
    }
    place(Slot{static_cast<uint32_t>(hash >> 32), static_cast<uint32_t>(bytes_.size()),
               static_cast<uint32_t>(ids_.size()), static_cast<uint16_t>(word.size()),
               static_cast<uint16_t>(count)},
          hash);
    bytes_.append(word.data(), word.size());
    ids_.insert(ids_.end(), ids, ids + count);
    ++size_;
  }

 private:
  struct Slot {
    uint32_t tag;  // the hash's high half (the low half picks the slot)
    uint32_t bytes_offset;
    uint32_t ids_offset;
    uint16_t len;  // 0: empty
    uint16_t ids_count;
  };
  void reset(size_t slots) {
    slots_.assign(slots, Slot{0, 0, 0, 0, 0});
    hashes_.clear();
    mask_ = slots - 1;
    bytes_.clear();
    ids_.clear();
    size_ = 0;
  }
  void place(const Slot& slot, uint64_t hash) {
    size_t i = hash & mask_;
    while (slots_[i].len != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
    hashes_.push_back(hash);
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    std::vector<uint64_t> old_hashes;
    old_hashes.swap(hashes_);
    slots_.assign(old.size() * 2, Slot{0, 0, 0, 0, 0});
    mask_ = slots_.size() - 1;
    // Entries in insertion order: their hashes were recorded then.
    size_t k = 0;
    std::vector<Slot> entries;
    for (const Slot& s : old)
      if (s.len != 0) entries.push_back(s);
    std::sort(entries.begin(), entries.end(),
              [](const Slot& a, const Slot& b) { return a.bytes_offset < b.bytes_offset; });
    for (const Slot& s : entries) place(s, old_hashes[k++]);
  }
  std::vector<Slot> slots_;
  std::vector<uint64_t> hashes_;  // full hash of every entry, in insertion order (for growing)
  size_t mask_ = 0;
  std::string bytes_;
  std::vector<int32_t> ids_;
  size_t size_ = 0;
};

}  // namespace ctm::text::detail
