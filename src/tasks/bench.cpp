// ctm bench <what>: small benchmarks that print a table and their headline number last. The benchmark is the
// first word after the task (or --what); each has a row in kBenchmarks below.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "ctm/core/clock.hpp"
#include "ctm/core/error.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

std::string tokenizer_path_option(const TaskContext& ctx);  // tokenize.cpp
int bench_sampling(const TaskContext& ctx);                 // bench_sampling.cpp

namespace {

// The texts of a JSONL file: "text", else "question" + "\n" + "answer" (GSM8K), else "prompt" (+
// "completion").
std::vector<std::string> read_bench_texts(const std::string& path) {
  std::vector<std::string> texts;
  JsonlReader reader(path);
  Json r;
  while (reader.next(r)) {
    auto s = [&](const char* k) { return r.contains(k) && r[k].is_string() ? r[k].get<std::string>() : ""; };
    if (!r.is_object()) reader.fail("expected a JSON object");
    if (r.contains("text")) {
      texts.push_back(s("text"));
    } else if (r.contains("question")) {
      texts.push_back(s("question") + "\n" + s("answer"));
    } else if (r.contains("prompt")) {
      texts.push_back(s("prompt") + s("completion"));
    } else {
      reader.fail("expected a \"text\", \"question\" or \"prompt\" field");
    }
  }
  if (texts.empty()) throw Error(str(path, ": no texts"));
  return texts;
}

// Encode throughput on one thread (CPU time of the thread): a first pass with an empty word cache, then timed
// passes with a warm one; the median warm pass is the headline.
int bench_tokenizer(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("bench tokenizer needs --input FILE.jsonl");
  if (ctx.comm.rank() != 0) return 0;
  const std::string path = tokenizer_path_option(ctx);
  const int passes = std::max(1, ctx.vm["passes"].as<int>());
  auto t0 = std::chrono::steady_clock::now();
  const text::Tokenizer tok = text::Tokenizer::load(path);
  const double load_s = seconds_since(t0);
  const std::vector<std::string> texts = read_bench_texts(ctx.vm["input"].as<std::string>());
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();

  std::vector<int32_t> ids;
  size_t tokens = 0;
  // Thread CPU time: on a shared machine the wall clock also counts other processes.
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  double wall_s = 0;
  auto pass = [&] {
    tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_now();
    for (const auto& t : texts) {
      ids.clear();
      tok.encode_into(t, false, ids);
      tokens += ids.size();
    }
    wall_s = seconds_since(start);
    return cpu_now() - cpu_start;
  };
  const double cold_s = pass();
  std::vector<double> warm, warm_wall;
  for (int i = 0; i < passes; ++i) {
    warm.push_back(pass());
    warm_wall.push_back(wall_s);
  }
  std::sort(warm.begin(), warm.end());
  std::sort(warm_wall.begin(), warm_wall.end());
  const double median_s = warm[warm.size() / 2];
  // Decode throughput over the same ids, for the record.
  std::vector<std::vector<int32_t>> all_ids;
  for (const auto& t : texts) all_ids.push_back(tok.encode(t, false));
  const double decode_start = cpu_now();
  size_t decoded = 0;
  for (const auto& v : all_ids) decoded += tok.decode(v).size();
  const double decode_s = cpu_now() - decode_start;

  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("tokenizer         %s\n", path.c_str());
  std::printf("texts             %zu (%.2f MB)\n", texts.size(), mb);
  std::printf("tokens            %zu (%.2f bytes/token)\n", tokens, static_cast<double>(bytes) / tokens);
  std::printf("load              %.3f s\n", load_s);
  std::printf("encode, cold cache %8.2f MB/s  (%.3f s of CPU time)\n", mb / cold_s, cold_s);
  std::printf(
      "encode, warm cache %8.2f MB/s  (median of %d passes, %.3f s of CPU time; wall clock %.2f MB/s)\n",
      mb / median_s, passes, median_s, mb / warm_wall[warm_wall.size() / 2]);
  std::printf("decode            %8.2f MB/s\n", static_cast<double>(decoded) / 1e6 / decode_s);
  std::printf("MB/s: %.2f\n", mb / median_s);
  std::fflush(stdout);
  return 0;
}

struct Benchmark {
  const char* name;
  const char* summary;
  int (*run)(const TaskContext&);
};

const Benchmark kBenchmarks[] = {
    {"tokenizer", "encode throughput of a tokenizer (MB/s, one thread) on the texts of a JSONL file",
     bench_tokenizer},
    {"sampling",
     "engine decode tokens/s (random 110M model at batch 1/8/64, tiny on ARITH, rollouts) vs the compute "
     "bound",
     bench_sampling},
};

}  // namespace

void add_bench_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("what", po::value<std::string>(), "the benchmark: tokenizer | sampling (also accepted as the word after bench)")
    ("tokenizer_path", po::value<std::string>(), "tokenizer folder or tokenizer.json (default: the model folder)")
    ("input", po::value<std::string>(), "JSONL texts: \"text\", or GSM8K's \"question\" + \"answer\"")
    ("passes", po::value<int>()->default_value(5), "timed passes (the median is reported)")
    ("prompt_tokens", po::value<int64_t>()->default_value(64), "sampling: prompt length of each request")
    ("new_tokens", po::value<int64_t>()->default_value(64), "sampling: tokens generated per sample")
    ("rollout_prefix", po::value<int64_t>()->default_value(512), "sampling: shared prefix of the 64 rollouts")
    ("cases", po::value<std::string>()->default_value("b1,b8,b64,rollouts,tiny,tiny_rollouts"),
     "sampling: the rows to run (b1 b8 b64 b256 rollouts: the random model of --shape; tiny tiny_rollouts: the "
     "tiny model); on a GPU the default is b1,b8,b64,b256")
    ("shape", po::value<std::string>()->default_value(""),
     "sampling: the random model, 110m or 8b (Llama-3-8B's shape); default 110m on the CPU, 8b on a GPU")
    ("repeat", po::value<int>()->default_value(1), "sampling: runs of each row (the machine is shared: ranges)");
  // clang-format on
}

int run_bench(const TaskContext& ctx) {
  std::string names;
  for (const Benchmark& b : kBenchmarks) names += str(names.empty() ? "" : " | ", b.name);
  if (!ctx.vm.count("what"))
    throw UsageError(str("bench needs the benchmark to run: ctm bench <", names, ">"));
  const std::string what = ctx.vm["what"].as<std::string>();
  for (const Benchmark& b : kBenchmarks) {
    if (what == b.name) return b.run(ctx);
  }
  throw UsageError(str("unknown benchmark '", what, "' (", names, ")"));
}

}  // namespace ctm::tasks
