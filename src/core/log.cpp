#include "ctm/core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include "ctm/core/error.hpp"

namespace ctm {

void setup_logging(int rank, int size, const std::string& level, bool all_ranks) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") throw UsageError(str("unknown --log_level '", level, "'"));
  // Logs go to stderr so that stdout carries only results (accuracy lines, tables).
  auto logger = std::make_shared<spdlog::logger>("ctm", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  std::string prefix = size > 1 ? str("[rank ", rank, "] ") : std::string();
  logger->set_pattern("[%H:%M:%S] " + prefix + "%^%l%$: %v");
  logger->set_level((rank == 0 || all_ranks) ? lvl : spdlog::level::off);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace ctm
