// Logging through spdlog: call spdlog::info(...) etc. anywhere; setup_logging() makes the lines rank-prefixed
// and, by default, silences every rank but 0.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace ctm {

// level: trace|debug|info|warn|error|off. all_ranks: log from every rank, not only rank 0.
void setup_logging(int rank, int size, const std::string& level, bool all_ranks = false);

}  // namespace ctm
