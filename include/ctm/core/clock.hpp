// Wall-clock seconds for timings and rates (steady: not affected by changes of the system time).
#pragma once

#include <chrono>

namespace ctm {

using SteadyClock = std::chrono::steady_clock;

// Seconds from t0 to now.
inline double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace ctm
