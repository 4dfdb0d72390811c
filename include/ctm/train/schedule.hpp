// Learning-rate schedules with linear warm-up, as in Hugging Face transformers (get_*_schedule_with_warmup):
// update number s (0-based) uses peak_lr × multiplier(s), so the very first update of a warm-up runs at lr 0.
#pragma once

#include <cstdint>
#include <string>

namespace ctm::train {

enum class ScheduleKind { Constant, Linear, Cosine };

ScheduleKind parse_schedule(
    const std::string& name);  // "constant" | "linear" | "cosine"; ctm::Error otherwise
std::string schedule_name(ScheduleKind kind);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Cosine;
  int64_t warmup_steps = 0;   // > 0 wins over warmup_ratio
  double warmup_ratio = 0.0;  // warm-up = ceil(ratio × total steps), as transformers' TrainingArguments
  double min_lr_ratio = 0.0;  // the schedule decays to min_lr_ratio × peak instead of 0 (linear, cosine)
};

// The number of warm-up steps for a run of total_steps optimizer updates.
int64_t warmup_steps(const ScheduleOptions& opts, int64_t total_steps);

// The factor applied to the peak learning rate at update `step` (0-based) of `total_steps`.
double lr_multiplier(const ScheduleOptions& opts, int64_t step, int64_t total_steps);

}  // namespace ctm::train
