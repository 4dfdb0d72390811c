// Runs a check that may hang or crash (a CAS on hostile input) in a forked child with a hard deadline.
//
// Why a process and not a thread: GiNaC can loop for a very long time or throw from deep inside CLN, and a
// thread can be neither interrupted nor isolated from a crash. The child runs the check, writes one byte
// through a pipe and leaves with _exit() (no atexit handlers, no stdio flush, no MPI); the parent waits on
// the pipe with poll() until the deadline, then SIGKILLs and reaps the child. The child's memory is a
// copy-on-write copy of the caller's, so GiNaC state is never shared between threads of the caller either.
#pragma once

#include <chrono>
#include <functional>

namespace ctm::grade {

enum class SandboxOutcome { True, False, Timeout, Crashed };

// fn's exceptions count as false. Thread-safe (each call forks its own child).
SandboxOutcome run_with_deadline(const std::function<bool()>& fn, std::chrono::milliseconds deadline);

// The per-pair limit of DESIGN.md §2 (1 s).
inline constexpr std::chrono::milliseconds kSymbolicDeadline{1000};

}  // namespace ctm::grade
