// Errors: user and input problems are exceptions with a message that names the file, the record and what is
// wrong; main catches them in one place. Internal invariants use assert.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ctm {

// A user or input error: bad file, bad record, bad value. main prints the message and exits 1.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A command-line error (unknown task, unknown or malformed option). main exits 2.
struct UsageError : Error {
  using Error::Error;
};

// Concatenates its arguments with operator<< (for error messages).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace ctm

// Throws ctm::Error with the concatenated message when cond is false.
#define CTM_CHECK(cond, ...)                                  \
  do {                                                        \
    if (!(cond)) throw ::ctm::Error(::ctm::str(__VA_ARGS__)); \
  } while (0)
