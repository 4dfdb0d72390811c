#include "ctm/engine/stop.hpp"

namespace ctm::engine {

std::optional<StopHit> find_stop(const std::string& text, size_t new_chars,
                                 const std::vector<std::string>& stops) {
  if (new_chars == 0) return std::nullopt;
  for (size_t i = 0; i < stops.size(); ++i) {
    const std::string& stop = stops[i];
    if (stop.empty()) continue;
    const size_t back = new_chars + stop.size();
    const size_t from = text.size() > back ? text.size() - back : 0;
    const size_t pos = text.find(stop, from);
    if (pos != std::string::npos) return StopHit{pos, i};
  }
  return std::nullopt;
}

}  // namespace ctm::engine
