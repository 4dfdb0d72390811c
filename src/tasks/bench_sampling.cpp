// ctm bench sampling: decode throughput of the engine, and in the same run the machine's limits: its matrix
// rate (the compute bound: float32 on the CPU, bfloat16 on a GPU) and its memory bandwidth (a large copy), so
// every row reads as a fraction of what the machine delivers (small batches are bound by reading the weights,
// large ones by the products). Cases:
// - b1, b8, b64, b256, rollouts: a randomly initialised Llama at batch 1, 8, 64 and 256 (distinct prompts),
// and
//   64 rollouts of one prompt. --shape 110m (the CPU default: d 768, 12 layers, 12 heads, SwiGLU 2048,
//   vocabulary 32000, tied head) or 8b (the GPU default: Llama-3-8B's shape, 16 GB in bfloat16);
// - tiny: the committed tiny model, 64 samples of one ARITH prompt (the few-shot prefix and the first test
//   question), as `ctm evaluation --dataset_name ARITH --sampling_n 64` decodes;
// - tiny_rollouts: the tiny model, 64 rollouts from a cut of a cached trajectory (the same prompt and a
//   response), as the rollout-sampling task decodes.
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "ctm/core/clock.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/core/worker_pool.hpp"
#include "ctm/data/dataset.hpp"
#include "ctm/data/prompt.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/engine/prefix_cache.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/small_batch_linear.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/task.hpp"

namespace ctm::tasks {
namespace {

// The random model's shape: "110m" or "8b" (Llama-3-8B: d 4096, 32 layers, 32 heads of which 8 for keys and
// values, SwiGLU 14336, vocabulary 128256, untied head).
model::ModelConfig bench_config(const std::string& shape) {
  model::ModelConfig c;
  const bool big = shape == "8b";
  c.hidden_size = big ? 4096 : 768;
  c.num_layers = big ? 32 : 12;
  c.num_heads = big ? 32 : 12;
  c.num_kv_heads = big ? 8 : 12;
  c.head_dim = big ? 128 : 64;
  c.intermediate_size = big ? 14336 : 2048;
  c.vocab_size = big ? 128256 : 32000;
  c.tie_word_embeddings = !big;
  c.max_position_embeddings = 8192;
  c.rope_theta = 500000.0;
  return c;
}

// Waits for the device's queued work (timing on a GPU).
void sync(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// A random model made on the device (normal(0, 0.02) weights, unit norms): an 8B model in seconds, where
// model::init_model's seeded CPU draws would take minutes.
std::shared_ptr<model::Transformer> random_model(const model::ModelConfig& cfg, torch::Device device,
                                                 torch::Dtype dtype) {
  torch::manual_seed(1234);
  auto m = std::make_shared<model::Transformer>(cfg, device, dtype);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : m->named_parameters()) {
    if (name.find("norm.weight") != std::string::npos)
      t.fill_(1.0);
    else
      t.normal_(0.0, 0.02);
  }
  sync(device);
  return m;
}

// float32 rate of torch::linear (OpenBLAS on CPU) for [m, k] x [n, k]^T, best of several runs, GFLOP/s.
double gemm_gflops(int64_t m, int64_t k, int64_t n, int reps) {
  const auto a = torch::randn({m, k}), w = torch::randn({n, k});
  auto c = torch::linear(a, w);  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c = torch::linear(a, w);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * m * k * n / best / 1e9;
}

// Decode-shaped products [rows, k] x [n, k]^T through ctm's small-batch kernel, GFLOP/s (best of 3 passes):
// over `count` distinct weight matrices (count > 1: together far larger than the caches, so the weights
// stream from memory as in a decode step), or `reps` times over one (count == 1: weights in cache).
double small_batch_gflops(int64_t rows, int64_t k, int64_t n, int64_t count, int64_t reps) {
  const auto x = torch::randn({rows, k});
  std::vector<torch::Tensor> ws;
  for (int64_t i = 0; i < count; ++i) ws.push_back(torch::randn({n, k}));
  auto y = torch::empty({rows, n});
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t r = 0; r < reps; ++r)
      for (const auto& w : ws)
        model::small_batch_linear(x.data_ptr<float>(), rows, k, w.data_ptr<float>(), n, nullptr,
                                  y.data_ptr<float>());
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * rows * k * n * count * reps / best / 1e9;
}

// The same streamed products through OpenBLAS.
double streamed_blas_gflops(int64_t rows, int64_t k, int64_t n, int64_t count) {
  const auto x = torch::randn({rows, k});
  std::vector<torch::Tensor> ws;
  for (int64_t i = 0; i < count; ++i) ws.push_back(torch::randn({n, k}));
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& w : ws) torch::linear(x, w);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * rows * k * n * count / best / 1e9;
}

// Memory bandwidth in GB/s over a 1 GiB buffer, best of 5: on a GPU a copy (bytes read + written); on the CPU
// a read by ctm's workers (as a decode step reads its weights: one thread alone does not reach the
// bandwidth).
double memory_gbps(torch::Device device) {
  const int64_t n = int64_t{1} << 28;  // float32: 1 GiB
  const auto src = torch::ones({n}, torch::dtype(torch::kFloat32).device(device));
  auto dst = device.is_cpu() ? torch::Tensor() : torch::empty_like(src);
  const int64_t slices = 64;
  std::vector<double> sums(slices);
  auto once = [&] {
    if (!device.is_cpu()) return void(dst.copy_(src));
    parallel_ranges(slices, 1, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        sums[s] = src.narrow(0, s * (n / slices), n / slices).sum().item<double>();
    });
  };
  once();
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    sync(device);
    const auto t0 = std::chrono::steady_clock::now();
    once();
    sync(device);
    best = std::min(best, seconds_since(t0));
  }
  return (device.is_cpu() ? 1.0 : 2.0) * 4.0 * static_cast<double>(n) / best / 1e9;
}

// Bytes a decode step of `batch` sequences reads: every weight but the embedding table (only rows of it are
// read, unless it is also the head), and each sequence's keys and values (ctx tokens each).
double decode_bytes(const model::ModelConfig& c, torch::Dtype dtype, int64_t batch, double ctx) {
  const double weights = static_cast<double>(c.num_parameters()) -
                         (c.tie_word_embeddings ? 0.0 : static_cast<double>(c.vocab_size * c.hidden_size));
  return weights * static_cast<double>(c10::elementSize(dtype)) +
         static_cast<double>(batch) * ctx * engine::SharedPrefixCache::bytes_per_token(c, dtype);
}

// Matrix-product FLOPs of one decode step of one sequence whose context (keys read) is ctx tokens.
double decode_flops(const model::ModelConfig& c, int64_t ctx) {
  const double D = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim,
               F = c.intermediate_size;
  const double per_layer = 2.0 * (D * qd + 2 * D * kvd + qd * D + 3 * D * F)  // projections and MLP
                           + 4.0 * c.num_heads * c.head_dim * static_cast<double>(ctx);  // scores and values
  return c.num_layers * per_layer + 2.0 * D * c.vocab_size;                              // + LM head
}

// The machine's limits, measured in the same run.
struct Bounds {
  double gflops = 0;  // matrix products (float32 on the CPU, bfloat16 on a GPU)
  double gbps = 0;    // memory bandwidth
};

struct CaseResult {
  std::string name;
  int64_t batch, prompt, new_tokens;
  double prefill_s, tok_s, decode_tok_s, ms_per_step, sample_ms_per_step, gflops, fraction, bw_fraction,
      cores;
};

// Runs the requests (every sample new_tokens long after a prompt of `prompt` tokens) and reads the rates:
// tokens/s over the whole call (prefill included) and over the decode steps, FLOP rate of the decode steps
// against the compute bound, and the cores used (process CPU time over wall time).
CaseResult run_case(engine::Engine& eng, const model::Transformer& m, const std::string& name,
                    const std::vector<engine::Request>& reqs, int64_t prompt, int64_t new_tokens,
                    const Bounds& bound) {
  const model::ModelConfig& cfg = m.config();
  const std::clock_t cpu0 = std::clock();
  eng.generate(reqs);
  const double cpu_s = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  const auto& st = eng.stats();
  // Decode steps of one sample read prompt + 1 .. prompt + new_tokens - 1 keys (the first token comes from
  // the prompt's logits).
  double flops = 0;
  for (int64_t j = 1; j < new_tokens; ++j) flops += decode_flops(cfg, prompt + j);
  flops *= static_cast<double>(st.samples);
  const double seconds = st.decode_s + st.sample_s;
  CaseResult r;
  r.name = name;
  r.batch = st.samples;
  r.prompt = prompt;
  r.new_tokens = new_tokens;
  r.prefill_s = st.prefill_s;
  r.tok_s = static_cast<double>(st.generated_tokens) / st.total_s;
  r.decode_tok_s = static_cast<double>(st.decode_slot_steps) / seconds;
  r.ms_per_step = 1e3 * seconds / static_cast<double>(st.decode_steps);
  r.sample_ms_per_step = 1e3 * st.sample_s / static_cast<double>(st.decode_steps);
  r.gflops = flops / seconds / 1e9;
  r.fraction = r.gflops / bound.gflops;
  // The rate if every step only had to read its bytes at the measured bandwidth (the mean context per step).
  // Above 1 where the weights stay in the caches (the tiny model).
  const double mean_ctx = static_cast<double>(prompt) + static_cast<double>(new_tokens) / 2;
  const double batch = static_cast<double>(st.decode_slot_steps) / static_cast<double>(st.decode_steps);
  const double bw_tok_s =
      batch * bound.gbps * 1e9 / decode_bytes(cfg, m.dtype(), std::llround(batch), mean_ctx);
  r.bw_fraction = r.decode_tok_s / bw_tok_s;
  r.cores = cpu_s / st.total_s;
  return r;
}

engine::Request bench_request(int64_t id, int64_t n, int64_t new_tokens) {
  engine::Request r;
  r.id = id;
  r.params.n = n;
  r.params.temperature = 1.0;  // the paper's workload: temperature sampling with top_p 0.95
  r.params.top_p = 0.95;
  r.params.max_new_tokens = new_tokens;
  r.params.ignore_eos = true;  // every sample runs the full length: a fixed amount of work
  return r;
}

// max_batch decode slots and a KV budget for `tokens` tokens (and a few spare blocks).
engine::EngineOptions bench_options(const model::Transformer& m, int64_t max_batch, int64_t tokens) {
  engine::EngineOptions o;
  o.max_batch = max_batch;
  o.progress = false;
  const int64_t per_token = engine::SharedPrefixCache::bytes_per_token(m.config(), m.dtype());
  o.kv_budget_bytes = std::max(o.kv_budget_bytes, (tokens + (max_batch + 8) * o.block_size) * per_token);
  return o;
}

// The random model: `requests` random prompts of `prompt` tokens, n samples each.
CaseResult random_case(model::Transformer& m, const std::string& name, int64_t requests, int64_t n,
                       int64_t prompt, int64_t new_tokens, const Bounds& bound) {
  Rng rng(mix_seed(1234, requests, n));
  std::vector<engine::Request> reqs;
  for (int64_t i = 0; i < requests; ++i) {
    reqs.push_back(bench_request(i, n, new_tokens));
    for (int64_t t = 0; t < prompt; ++t)
      reqs.back().prompt_ids.push_back(static_cast<int32_t>(rng.below(m.config().vocab_size)));
  }
  const int64_t samples = requests * n;
  engine::Engine eng(m, static_cast<const text::Tokenizer*>(nullptr),
                     bench_options(m, samples, requests * prompt + samples * new_tokens));
  return run_case(eng, m, name, reqs, prompt, new_tokens, bound);
}

// The tiny model on the ARITH prompt: 64 samples of the prompt, or 64 rollouts from a cached trajectory (the
// prompt and 2 x new_tokens tokens of the model's own greedy answer) cut after the first new_tokens of them.
CaseResult tiny_case(model::Transformer& m, const text::Tokenizer& tok, bool rollouts, int64_t new_tokens,
                     const Bounds& bound) {
  const auto kind = data::DatasetKind::ARITH;
  const auto problems = data::load_problems(data::test_split_path(kind, data_dir()), 1);
  const std::vector<int32_t> prompt =
      tok.encode(data::PromptBuilder(kind, data_dir()).build(problems.at(0).question), false);
  engine::Engine eng(m, tok, bench_options(m, 64, int64_t{1} << 16));
  engine::Request r = bench_request(0, 64, new_tokens);
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (!rollouts) {
    r.prompt_ids = prompt;
    return run_case(eng, m, "tiny, 64 samples", {r}, P, new_tokens, bound);
  }
  engine::Request answer = bench_request(1, 1, 2 * new_tokens);
  answer.params.temperature = 0;
  answer.prompt_ids = prompt;
  std::vector<int32_t> trajectory = prompt;
  const auto answered = eng.generate({answer});  // held: a range over a temporary's member would dangle
  for (int32_t id : answered[0].completions[0].token_ids) trajectory.push_back(id);
  r.prefix = eng.cache_prefix(trajectory, P - 1);
  r.prefix_len = P + new_tokens;
  return run_case(eng, m, "tiny, 64 rollouts of a cached cut", {r}, P + new_tokens, new_tokens, bound);
}

// A GPU's bfloat16 matrix rate: the best of square products, GFLOP/s.
double device_gemm_gflops(torch::Device device) {
  double best_rate = 0;
  for (int64_t n : {4096, 8192}) {
    const auto opts = torch::dtype(torch::kBFloat16).device(device);
    const auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
    auto c = torch::matmul(a, b);
    double best = 1e30;
    for (int i = 0; i < 10; ++i) {
      sync(device);
      const auto t0 = std::chrono::steady_clock::now();
      c = torch::matmul(a, b);
      sync(device);
      best = std::min(best, seconds_since(t0));
    }
    const double rate = 2.0 * n * n * n / best / 1e9;
    std::printf("bfloat16 GEMM %lld^3 (torch on %s): %.0f GFLOP/s\n", (long long)n, device.str().c_str(),
                rate);
    best_rate = std::max(best_rate, rate);
  }
  return best_rate;
}

// The machine's float32 matrix rate: the best of torch products of square and decode shapes and of ctm's
// small-batch kernel on a decode-shaped product whose weights stay in cache. Prints each.
double cpu_gemm_gflops() {
  const std::vector<std::array<int64_t, 4>> shapes = {{2048, 2048, 2048, 3},
                                                      {1024, 1024, 1024, 10},
                                                      {64, 768, 2048, 50},
                                                      {64, 2048, 768, 50},
                                                      {512, 768, 2048, 10}};
  double bound = 0;
  for (const auto& s : shapes) {
    const double rate = gemm_gflops(s[0], s[1], s[2], static_cast<int>(s[3]));
    std::printf("float32 GEMM %lld x %lld x %lld (torch): %.1f GFLOP/s\n", (long long)s[0], (long long)s[1],
                (long long)s[2], rate);
    bound = std::max(bound, rate);
  }
  if (model::small_batch_applies(torch::zeros({64, 256}), torch::zeros({768, 256}))) {
    const double own = small_batch_gflops(64, 256, 768, 1, 200);
    std::printf("float32 64 x 256 x 768, weights in cache (ctm small-batch kernel): %.1f GFLOP/s\n", own);
    bound = std::max(bound, own);
    std::printf(
        "decode-shaped 64 x 768 x 2048 over 48 matrices (302 MB, streamed from memory): OpenBLAS %.1f "
        "GFLOP/s, ctm small-batch kernel %.1f GFLOP/s\n",
        streamed_blas_gflops(64, 768, 2048, 48), small_batch_gflops(64, 768, 2048, 48, 1));
  }
  return bound;
}

Bounds measure_bounds(torch::Device device) {
  Bounds b;
  b.gflops = device.is_cpu() ? cpu_gemm_gflops() : device_gemm_gflops(device);
  b.gbps = memory_gbps(device);
  std::printf("compute bound (the best of these): %.1f GFLOP/s; memory bandwidth (1 GiB %s): %.1f GB/s\n",
              b.gflops, device.is_cpu() ? "read by the workers" : "copy", b.gbps);
  return b;
}

void print_table(const std::vector<CaseResult>& rows, bool on_gpu) {
  std::printf(
      "\n| case | batch | prompt | new | prefill s | tok/s | decode tok/s | ms/step | of which sampling | "
      "GFLOP/s | of FLOP bound | of bandwidth bound | cores |\n");
  std::printf(
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : rows) {
    // On a GPU the forward runs asynchronously: the time of the draws includes waiting for it.
    const std::string sampling = on_gpu ? "-" : str(std::round(r.sample_ms_per_step * 100) / 100);
    std::printf("| %s | %lld | %lld | %lld | %.2f | %.0f | %.0f | %.2f | %s | %.1f | %.2f | %.2f | %.2f |\n",
                r.name.c_str(), (long long)r.batch, (long long)r.prompt, (long long)r.new_tokens, r.prefill_s,
                r.tok_s, r.decode_tok_s, r.ms_per_step, sampling.c_str(), r.gflops, r.fraction, r.bw_fraction,
                r.cores);
  }
}

}  // namespace

int bench_sampling(const TaskContext& ctx) {
  if (ctx.comm.rank() != 0) return 0;
  c10::InferenceMode inference;
  const int64_t prompt = ctx.vm["prompt_tokens"].as<int64_t>();
  const int64_t new_tokens = ctx.vm["new_tokens"].as<int64_t>();
  const int64_t rollout_prefix = ctx.vm["rollout_prefix"].as<int64_t>();
  const int repeat = ctx.vm["repeat"].as<int>();
  if (prompt < 1 || new_tokens < 2 || rollout_prefix < 1 || repeat < 1)
    throw UsageError(
        "bench sampling: --prompt_tokens >= 1, --new_tokens >= 2, --rollout_prefix >= 1 and --repeat >= 1");
  const torch::Device device = rank_device(ctx.common, ctx.comm);
  const torch::Dtype dtype = model::default_dtype(device);
  std::string shape = ctx.vm["shape"].as<std::string>();
  if (shape.empty()) shape = device.is_cpu() ? "110m" : "8b";
  if (shape != "110m" && shape != "8b")
    throw UsageError(str("bench sampling: --shape must be 110m or 8b (got '", shape, "')"));
  const std::vector<std::string> all = {"b1", "b8", "b64", "b256", "rollouts", "tiny", "tiny_rollouts"};
  const auto cases =
      split_commas(option_given(ctx, "cases") || device.is_cpu() ? ctx.vm["cases"].as<std::string>()
                                                                 : std::string("b1,b8,b64,b256"));
  for (const auto& c : cases)
    if (std::find(all.begin(), all.end(), c) == all.end())
      throw UsageError(
          str("bench sampling: unknown case '", c, "' (b1, b8, b64, b256, rollouts, tiny, tiny_rollouts)"));
  auto wanted = [&](const char* c) { return std::find(cases.begin(), cases.end(), c) != cases.end(); };

  const Bounds bound = measure_bounds(device);
  std::printf("sampling at temperature 1, top_p 0.95, every sample runs the full length; %s, %s\n\n",
              device.str().c_str(), model::torch_dtype_name(dtype).c_str());
  std::vector<CaseResult> rows;
  if (wanted("b1") || wanted("b8") || wanted("b64") || wanted("b256") || wanted("rollouts")) {
    const auto cfg = bench_config(shape);
    auto m = random_model(cfg, device, dtype);
    std::printf(
        "random model: Llama d %lld, %lld layers, %lld/%lld heads, SwiGLU %lld, vocab %lld, %s head: %.2fB "
        "parameters\n",
        (long long)cfg.hidden_size, (long long)cfg.num_layers, (long long)cfg.num_heads,
        (long long)cfg.num_kv_heads, (long long)cfg.intermediate_size, (long long)cfg.vocab_size,
        cfg.tie_word_embeddings ? "tied" : "own", cfg.num_parameters() / 1e9);
    for (int i = 0; i < repeat; ++i)
      for (int64_t b : {1, 8, 64, 256})
        if (wanted(str("b", b).c_str()))
          rows.push_back(random_case(*m, str("batch ", b), b, 1, prompt, new_tokens, bound));
    for (int i = 0; i < repeat && wanted("rollouts"); ++i)
      rows.push_back(random_case(*m, "64 rollouts, one prefix", 1, 64, rollout_prefix, new_tokens, bound));
  }
  if (wanted("tiny") || wanted("tiny_rollouts")) {
    const std::string dir = data_dir() + "/models/tiny";
    auto m = model::load_model(dir, device, dtype);
    const auto tok = text::Tokenizer::load(dir);
    std::printf("tiny model: %s (d %lld, %lld layers, vocab %lld)\n", dir.c_str(),
                (long long)m->config().hidden_size, (long long)m->config().num_layers,
                (long long)m->config().vocab_size);
    for (int i = 0; i < repeat; ++i) {
      if (wanted("tiny")) rows.push_back(tiny_case(*m, tok, false, new_tokens, bound));
      if (wanted("tiny_rollouts")) rows.push_back(tiny_case(*m, tok, true, new_tokens, bound));
    }
  }
  print_table(rows, !device.is_cpu());
  for (const auto& r : rows)
    if (r.name == "batch 64") std::printf("decode_b64_fraction_of_bound: %.3f\n", r.fraction);
  for (const auto& r : rows)
    if (r.name == "batch 1") std::printf("decode_b1_fraction_of_bandwidth_bound: %.3f\n", r.bw_fraction);
  for (const auto& r : rows)
    if (r.name.rfind("tiny", 0) == 0) std::printf("%s: %.0f decode tok/s\n", r.name.c_str(), r.decode_tok_s);
  std::fflush(stdout);
  return 0;
}

}  // namespace ctm::tasks
