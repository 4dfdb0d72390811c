#include "bpe.hpp"

#include <climits>
#include <queue>

#include "utf8.hpp"

namespace ctm::text::detail {

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    if (const int32_t* id = vocab.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  thread_local std::vector<int32_t> ids;
  ids.clear();
  // Units missing from the vocabulary: <0xXX> byte tokens when byte_fallback, else the unknown token (fused
  // runs when fuse_unk), else dropped. As in Hugging Face, a pending unknown token is written only when the
  // next known unit (or the end) arrives, after any byte-fallback tokens in between.
  bool pending_unk = false;
  auto known = [&](int32_t id) {
    if (pending_unk) ids.push_back(unk_id), pending_unk = false;
    ids.push_back(id);
  };
  auto unknown = [&](std::string_view unit) {
    if (byte_fallback) {
      bool all = true;
      for (unsigned char b : unit) all = all && byte_fallback_ids[b] >= 0;
      if (all) {
        for (unsigned char b : unit) ids.push_back(byte_fallback_ids[b]);
        return;
      }
    }
    if (unk_id < 0) return;
    if (pending_unk && !fuse_unk) ids.push_back(unk_id);
    pending_unk = true;
  };
  if (byte_level) {
    for (size_t i = 0; i < word.size(); ++i) {
      const int32_t id = byte_ids[static_cast<unsigned char>(word[i])];
      if (id >= 0) {
        known(id);
      } else {
        unknown(word.substr(i, 1));
      }
    }
  } else {
    for (size_t i = 0; i < word.size();) {
      const size_t len = utf8_len(static_cast<unsigned char>(word[i]));
      const std::string_view unit = word.substr(i, len);
      if (const int32_t* id = vocab.find(unit)) {
        known(*id);
      } else {
        unknown(unit);
      }
      i += len;
    }
  }
  if (pending_unk) ids.push_back(unk_id);
  merge(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::merge(std::vector<int32_t>& ids) const {
  // The scan costs O(n) per merge; beyond a few dozen units the heap's O(log n) wins.
  if (ids.size() <= 48) {
    merge_scan(ids);
  } else {
    merge_heap(ids);
  }
}

void BpeModel::merge_scan(std::vector<int32_t>& ids) const {
  size_t len = ids.size();
  if (len < 2) return;
  thread_local std::vector<int32_t> ranks, merged;
  ranks.resize(len - 1);
  merged.resize(len - 1);
  auto set_pair = [&](size_t i) {
    const PairMap::Merge* m = merges.find(ids[i], ids[i + 1]);
    ranks[i] = m ? m->rank : INT_MAX;
    merged[i] = m ? m->id : -1;
  };
  for (size_t i = 0; i + 1 < len; ++i) set_pair(i);
  while (len > 1) {
    int32_t best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < len; ++i) {
      if (ranks[i] < best) best = ranks[i], at = i;
    }
    if (best == INT_MAX) break;
    ids[at] = merged[at];
    // Remove unit at+1 and pair `at`; the pairs on both sides of the new unit change.
    for (size_t i = at + 1; i + 1 < len; ++i) ids[i] = ids[i + 1];
    for (size_t i = at; i + 2 < len; ++i) ranks[i] = ranks[i + 1], merged[i] = merged[i + 1];
    --len;
    if (at > 0) set_pair(at - 1);
    if (at + 1 < len) set_pair(at);
  }
  ids.resize(len);
}

void BpeModel::merge_heap(std::vector<int32_t>& ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  struct Unit {
    int32_t id, prev, next;
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Unit> units(n);
  for (int32_t i = 0; i < n; ++i) units[i] = Unit{ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int32_t pos) {
    const int32_t next = units[pos].next;
    if (next < 0) return;
    if (const PairMap::Merge* m = merges.find(units[pos].id, units[next].id))
      heap.push({m->rank, pos, m->id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Unit& u = units[top.pos];
    if (!u.alive || u.next < 0) continue;
    const PairMap::Merge* m = merges.find(u.id, units[u.next].id);
    if (!m || m->id != top.id) continue;  // a stale candidate: the pair changed since it was queued
    Unit& right = units[u.next];
    u.id = top.id;
    right.alive = false;
    u.next = right.next;
    if (u.next >= 0) units[u.next].prev = top.pos;
    if (u.prev >= 0) push_pair(u.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = units[i].next) ids.push_back(units[i].id);
}

}  // namespace ctm::text::detail
