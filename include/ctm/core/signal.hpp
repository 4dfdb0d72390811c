// Slurm sends SIGTERM shortly before a job's time limit. Long tasks poll stop_requested() between units of
// work, checkpoint what they finished and exit cleanly.
#pragma once

namespace ctm {

void install_stop_handlers();  // SIGTERM and SIGINT set the flag (a second SIGINT kills as usual)
bool stop_requested();
void request_stop();  // for tests

// Thrown by a task that stopped on request after checkpointing; main exits with code 143 quietly.
struct Stopped {};

}  // namespace ctm
