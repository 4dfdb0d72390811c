// Stop strings matched on streamed text, with vLLM's rule: after new characters arrive, each stop string (in
// list order) is searched from len(new) + len(stop) characters before the end; the first one found wins and
// the completion is cut where it starts (the stop string is not part of the completion). A stop string may
// span several tokens.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace ctm::engine {

struct StopHit {
  size_t pos;    // where the completion ends: the start of the stop string in text
  size_t which;  // index into the stop list
};

// text: the whole completion so far, whose last new_chars bytes just arrived.
std::optional<StopHit> find_stop(const std::string& text, size_t new_chars,
                                 const std::vector<std::string>& stops);

}  // namespace ctm::engine
