// Small open-addressing hash tables for the tokenizer's hot paths: string -> id lookups without building a
// std::string per lookup, and (id, id) -> merge lookups.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace ctm::text::detail {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
  }
  return mix64(h);
}

// string -> int32, insert-only. Keys live in one arena.
class StringIdMap {
 public:
  explicit StringIdMap(size_t expected = 16) { rehash(expected); }

  // Inserts key -> value unless key is present; returns false (and keeps the old value) when it was.
  bool insert(std::string_view key, int32_t value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size());
    const uint64_t h = hash_bytes(key.data(), key.size());
    size_t i = h & mask_;
    while (slots_[i].len != kEmpty) {
      if (slots_[i].hash == h && equal(slots_[i], key)) return false;
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value};
    arena_.append(key.data(), key.size());
    ++size_;
    return true;
  }

  const int32_t* find(std::string_view key) const {
    const uint64_t h = hash_bytes(key.data(), key.size());
    size_t i = h & mask_;
    while (slots_[i].len != kEmpty) {
      if (slots_[i].hash == h && equal(slots_[i], key)) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

  size_t size() const { return size_; }

  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.len != kEmpty) f(std::string_view(arena_.data() + s.offset, s.len), s.value);
  }

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    uint64_t hash;
    uint32_t offset;
    uint32_t len;
    int32_t value;
  };
  bool equal(const Slot& s, std::string_view key) const {
    return s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0;
  }
  void rehash(size_t min_slots) {
    size_t n = 16;
    while (n < min_slots * 2) n *= 2;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(n, Slot{0, 0, kEmpty, 0});
    mask_ = n - 1;
    for (const Slot& s : old) {
      if (s.len == kEmpty) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// (left id, right id) -> (rank, merged id): the BPE merge table.
class PairMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    keys_.assign(cap, kEmptyKey);
    values_.assign(cap, Merge{0, 0});
    mask_ = cap - 1;
    size_ = 0;
  }
  // False when the pair was already present: the later merge replaces it, as in Hugging Face's map build.
  bool insert(int32_t a, int32_t b, Merge m) {
    if (keys_.empty() || (size_ + 1) * 2 > keys_.size()) grow();
    const uint64_t k = key(a, b);
    size_t i = mix64(k) & mask_;
    while (keys_[i] != kEmptyKey) {
      if (keys_[i] == k) {
        values_[i] = m;
        return false;
      }
      i = (i + 1) & mask_;
    }
    keys_[i] = k;
    values_[i] = m;
    ++size_;
    return true;
  }
  const Merge* find(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    const uint64_t k = key(a, b);
    size_t i = mix64(k) & mask_;
    while (keys_[i] != kEmptyKey) {
      if (keys_[i] == k) return &values_[i];
      i = (i + 1) & mask_;
    }
    return nullptr;
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmptyKey = ~0ull;
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void grow() {
    std::vector<uint64_t> old_keys;
    std::vector<Merge> old_values;
    old_keys.swap(keys_);
    old_values.swap(values_);
    reserve(old_keys.empty() ? 16 : old_keys.size());
    for (size_t j = 0; j < old_keys.size(); ++j) {
      if (old_keys[j] == kEmptyKey) continue;
      size_t i = mix64(old_keys[j]) & mask_;
      while (keys_[i] != kEmptyKey) i = (i + 1) & mask_;
      keys_[i] = old_keys[j];
      values_[i] = old_values[j];
      ++size_;
    }
  }
  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace ctm::text::detail
