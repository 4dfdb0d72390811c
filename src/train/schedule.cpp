#include "ctm/train/schedule.hpp"

#include <algorithm>
#include <cmath>

#include "ctm/core/error.hpp"

namespace ctm::train {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  throw Error(str("unknown learning-rate schedule '", name, "' (expected constant, linear or cosine)"));
}

std::string schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Linear:
      return "linear";
    case ScheduleKind::Cosine:
      return "cosine";
  }
  return "?";
}

int64_t warmup_steps(const ScheduleOptions& opts, int64_t total_steps) {
  if (opts.warmup_steps > 0) return opts.warmup_steps;
  CTM_CHECK(opts.warmup_ratio >= 0.0 && opts.warmup_ratio <= 1.0, "warm-up ratio ", opts.warmup_ratio,
            " is outside [0, 1]");
  return static_cast<int64_t>(std::ceil(opts.warmup_ratio * static_cast<double>(total_steps)));
}

double lr_multiplier(const ScheduleOptions& opts, int64_t step, int64_t total_steps) {
  const int64_t warmup = warmup_steps(opts, total_steps);
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total_steps - warmup));
  const double floor = opts.min_lr_ratio;
  switch (opts.kind) {
    case ScheduleKind::Constant:
      return 1.0;
    case ScheduleKind::Linear:
      return floor + (1.0 - floor) * std::max(0.0, 1.0 - progress);
    case ScheduleKind::Cosine:
      return floor + (1.0 - floor) * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  return 1.0;
}

}  // namespace ctm::train
