// Fuzz target: the safetensors reader (ctm::io::SafetensorsFile) on the input as a whole file (a memfd).
// A file that opens must keep its promises: every tensor's bytes lie inside the mapping (read them all, so
// ASan sees any out-of-bounds offset), nbytes = numel x dtype size, info()/contains() find every tensor,
// release() accepts every tensor. Anything other than ctm::Error escaping is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "ctm/core/error.hpp"
#include "ctm/io/safetensors.hpp"
#include "fuzz_util.hpp"

namespace {

using ctm::fuzz::require;

// A sum the compiler cannot drop, so every byte is really read.
volatile uint64_t g_sink;

void check_file(const ctm::io::SafetensorsFile& file) {
  uint64_t sum = 0;
  for (const auto& t : file.tensors()) {
    require(file.contains(t.name) && &file.info(t.name) == &t, "info() does not find a listed tensor");
    require(t.begin <= t.end, "a tensor ends before it begins");
    require(static_cast<uint64_t>(t.numel()) * ctm::io::dtype_size(t.dtype) == t.nbytes(),
            "nbytes() is not numel() x dtype size");
    const uint8_t* bytes = file.data(t);
    for (uint64_t i = 0; i < t.nbytes(); ++i) sum += bytes[i];
    file.release(t);
  }
  for (const auto& [key, value] : file.metadata()) sum += key.size() + value.size();
  g_sink = sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ctm::fuzz::MemFile mem(std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    check_file(ctm::io::SafetensorsFile(mem.path()));
  } catch (const ctm::Error&) {
  }
  try {
    ctm::io::SafetensorsSet set(mem.path());
    require(set.files().size() == 1, "a single file opened as more than one shard");
    uint64_t total = 0;
    for (const auto& name : set.names()) total += set.info(name).nbytes();
    require(total == set.total_bytes(), "total_bytes() is not the sum of the tensors' bytes");
  } catch (const ctm::Error&) {
  }
  return 0;
}
