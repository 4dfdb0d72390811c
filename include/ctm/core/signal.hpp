// Slurm sends SIGTERM shortly before a job's time limit. Long tasks poll stop_requested() between units of
// work, checkpoint what they finished and exit cleanly.
#pragma once

#include <string>

namespace ctm {

void install_stop_handlers();  // SIGTERM, SIGUSR1 and SIGINT set the flag (a second SIGINT kills as usual)
bool stop_requested();
void request_stop();        // for tests
void clear_stop_request();  // for tests

// Thrown when a task stops on request. `kept` says truthfully what was saved and how to go on ("412 of 1000
// questions are saved; rerun the same command to resume"); main prints it and exits 143.
struct Stopped {
  std::string kept;
};

}  // namespace ctm
