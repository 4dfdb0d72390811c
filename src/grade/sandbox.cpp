// fork + pipe + poll + SIGKILL: see sandbox.hpp for why.
#include "ctm/grade/sandbox.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "ctm/core/error.hpp"

namespace ctm::grade {
namespace {

void reap(pid_t pid) {
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

SandboxOutcome run_with_deadline(const std::function<bool()>& fn, std::chrono::milliseconds deadline) {
  int fds[2];
  CTM_CHECK(pipe2(fds, O_CLOEXEC) == 0, "grade: pipe() failed (errno ", errno, ")");
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw Error(str("grade: fork() failed (errno ", errno, ")"));
  }
  if (pid == 0) {
    close(fds[0]);
    char verdict = '0';
    try {
      verdict = fn() ? '1' : '0';
    } catch (...) {
      verdict = '0';
    }
    ssize_t ignored = write(fds[1], &verdict, 1);
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + deadline;
  char verdict = 0;
  bool got = false, timed_out = false;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left < 0) left = 0;
    pollfd pfd{fds[0], POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    timed_out = rc == 0;
    if (rc > 0) {
      ssize_t n;
      do {
        n = read(fds[0], &verdict, 1);
      } while (n < 0 && errno == EINTR);
      got = n == 1;
    }
    break;  // data, EOF (child died) or deadline
  }
  close(fds[0]);
  if (!got) {
    // Timed out or died without a verdict: make sure it is gone, then reap it.
    kill(pid, SIGKILL);
    reap(pid);
    return timed_out ? SandboxOutcome::Timeout : SandboxOutcome::Crashed;
  }
  reap(pid);  // it has written its byte and is in _exit
  return verdict == '1' ? SandboxOutcome::True : SandboxOutcome::False;
}

}  // namespace ctm::grade
