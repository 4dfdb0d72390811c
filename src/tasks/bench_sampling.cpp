// ctm bench sampling: decode throughput of the engine on a randomly initialised ~110M-parameter Llama (d 768,
// 12 layers, 12 heads, SwiGLU 2048, vocabulary 32000, tied head) at batch 1, 8 and 64 (distinct prompts) and
// for 64 rollouts of one shared prefix; and, in the same run, the machine's float32 matrix-product rate (a
// square torch::mm), so the decode FLOP rate can be read as a fraction of what the matrix unit delivers here.
#include <array>
#include <chrono>
#include <cstdio>

#include "ctm/core/error.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/engine/engine.hpp"
#include "ctm/model/loader.hpp"
#include "ctm/model/small_batch_linear.hpp"
#include "ctm/tasks/task.hpp"

namespace ctm::tasks {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

model::ModelConfig bench_config() {
  model::ModelConfig c;
  c.hidden_size = 768;
  c.num_layers = 12;
  c.num_heads = 12;
  c.num_kv_heads = 12;
  c.head_dim = 64;
  c.intermediate_size = 2048;
  c.vocab_size = 32000;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = 4096;
  c.rope_theta = 500000.0;
  return c;
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

// Decode-shaped products [rows, k] x [n, k]^T over `count` distinct weight matrices (together far larger than
// the caches, so the weights stream from memory as in a decode step): OpenBLAS (torch::linear) and ctm's
// small-batch kernel, best of 3 passes, GFLOP/s.
std::pair<double, double> streamed_gemm_gflops(int64_t rows, int64_t k, int64_t n, int64_t count) {
  const auto x = torch::randn({rows, k});
  std::vector<torch::Tensor> ws;
  for (int64_t i = 0; i < count; ++i) ws.push_back(torch::randn({n, k}));
  auto y = torch::empty({rows, n});
  double best_blas = 1e30, best_ctm = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& w : ws) y = torch::linear(x, w);
    best_blas = std::min(best_blas, seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
    for (const auto& w : ws)
      model::small_batch_linear(x.data_ptr<float>(), rows, k, w.data_ptr<float>(), n, nullptr,
                                y.data_ptr<float>());
    best_ctm = std::min(best_ctm, seconds_since(t0));
  }
  const double flops = 2.0 * rows * k * n * count;
  return {flops / best_blas / 1e9, flops / best_ctm / 1e9};
}

// Matrix-product FLOPs of one decode step of one sequence whose context (keys read) is ctx tokens.
double decode_flops(const model::ModelConfig& c, int64_t ctx) {
  const double D = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim,
               F = c.intermediate_size;
  const double per_layer = 2.0 * (D * qd + 2 * D * kvd + qd * D + 3 * D * F)  // projections and MLP
                           + 4.0 * c.num_heads * c.head_dim * static_cast<double>(ctx);  // scores and values
  return c.num_layers * per_layer + 2.0 * D * c.vocab_size;                              // + LM head
}

struct CaseResult {
  std::string name;
  int64_t batch, prompt, new_tokens;
  double prefill_s, decode_tok_s, ms_per_step, sample_ms_per_step, gflops, fraction;
};

CaseResult run_case(model::Transformer& m, const std::string& name, int64_t requests, int64_t n,
                    int64_t prompt, int64_t new_tokens, double gemm) {
  const auto& c = m.config();
  Rng rng(mix_seed(1234, requests, n));
  std::vector<engine::Request> reqs(requests);
  for (int64_t i = 0; i < requests; ++i) {
    reqs[i].id = i;
    for (int64_t t = 0; t < prompt; ++t)
      reqs[i].prompt_ids.push_back(static_cast<int32_t>(rng.below(c.vocab_size)));
    reqs[i].params.n = n;
    reqs[i].params.temperature = 1.0;  // the paper's workload: temperature sampling with top_p 0.95
    reqs[i].params.top_p = 0.95;
    reqs[i].params.max_new_tokens = new_tokens;
    reqs[i].params.ignore_eos = true;  // every sample runs the full length: a fixed amount of work
  }
  engine::EngineOptions o;
  o.max_batch = requests * n;
  o.progress = false;
  engine::Engine eng(m, static_cast<const text::Tokenizer*>(nullptr), o);
  eng.generate(reqs);
  const auto& st = eng.stats();
  // Decode steps of one sample read prompt + 1 .. prompt + new_tokens - 1 keys (the first token comes from
  // the prefill).
  double flops = 0;
  for (int64_t j = 1; j < new_tokens; ++j) flops += decode_flops(c, prompt + j);
  flops *= static_cast<double>(requests * n);
  const double seconds = st.decode_s + st.sample_s;
  CaseResult r;
  r.name = name;
  r.batch = requests * n;
  r.prompt = prompt;
  r.new_tokens = new_tokens;
  r.prefill_s = st.prefill_s;
  r.decode_tok_s = static_cast<double>(st.decode_slot_steps) / seconds;
  r.ms_per_step = 1e3 * seconds / static_cast<double>(st.decode_steps);
  r.sample_ms_per_step = 1e3 * st.sample_s / static_cast<double>(st.decode_steps);
  r.gflops = flops / seconds / 1e9;
  r.fraction = r.gflops / gemm;
  return r;
}

}  // namespace

int bench_sampling(const TaskContext& ctx) {
  if (ctx.comm.rank() != 0) return 0;
  c10::InferenceMode inference;
  const int64_t prompt = ctx.vm.count("prompt_tokens") ? ctx.vm["prompt_tokens"].as<int64_t>() : 64;
  const int64_t new_tokens = ctx.vm.count("new_tokens") ? ctx.vm["new_tokens"].as<int64_t>() : 64;
  const int64_t rollout_prefix =
      ctx.vm.count("rollout_prefix") ? ctx.vm["rollout_prefix"].as<int64_t>() : 512;
  if (prompt < 1 || new_tokens < 2 || rollout_prefix < 1)
    throw UsageError("bench sampling: --prompt_tokens >= 1, --new_tokens >= 2 and --rollout_prefix >= 1");
  const auto cfg = bench_config();
  auto m = model::init_model(cfg, 42, torch::kCPU, torch::kFloat32);
  std::printf(
      "model: Llama d %lld, %lld layers, %lld heads, SwiGLU %lld, vocab %lld, tied head: %.1fM parameters\n",
      (long long)cfg.hidden_size, (long long)cfg.num_layers, (long long)cfg.num_heads,
      (long long)cfg.intermediate_size, (long long)cfg.vocab_size, cfg.num_parameters() / 1e6);
  // The machine's matrix rate: the best of square products and of the decode step's own shapes.
  const std::vector<std::array<int64_t, 4>> shapes = {{2048, 2048, 2048, 3},
                                                      {1024, 1024, 1024, 10},
                                                      {64, 768, 2048, 50},
                                                      {64, 2048, 768, 50},
                                                      {512, 768, 2048, 10}};
  double gemm = 0;
  for (const auto& s : shapes) {
    const double rate = gemm_gflops(s[0], s[1], s[2], static_cast<int>(s[3]));
    std::printf("float32 GEMM %lld x %lld x %lld: %.1f GFLOP/s\n", (long long)s[0], (long long)s[1],
                (long long)s[2], rate);
    gemm = std::max(gemm, rate);
  }
  std::printf("float32 GEMM rate of this machine (the best of these): %.1f GFLOP/s\n", gemm);
  if (model::small_batch_applies(torch::zeros({64, 768}), torch::zeros({2048, 768}))) {
    const auto [blas, own] = streamed_gemm_gflops(64, 768, 2048, 48);
    std::printf(
        "decode-shaped 64 x 768 x 2048 over 48 matrices (302 MB, streamed from memory): OpenBLAS %.1f "
        "GFLOP/s, "
        "ctm small-batch kernel %.1f GFLOP/s\n",
        blas, own);
  }
  std::printf("sampling at temperature 1, top_p 0.95, every sample runs the full length\n\n");
  std::vector<CaseResult> rows;
  rows.push_back(run_case(*m, "batch 1", 1, 1, prompt, new_tokens, gemm));
  rows.push_back(run_case(*m, "batch 8", 8, 1, prompt, new_tokens, gemm));
  rows.push_back(run_case(*m, "batch 64", 64, 1, prompt, new_tokens, gemm));
  rows.push_back(run_case(*m, "64 rollouts, one prefix", 1, 64, rollout_prefix, new_tokens, gemm));
  std::printf(
      "| case | batch | prompt | new | prefill s | decode tok/s | ms/step | of which sampling | GFLOP/s | of "
      "GEMM |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : rows)
    std::printf("| %s | %lld | %lld | %lld | %.2f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", r.name.c_str(),
                (long long)r.batch, (long long)r.prompt, (long long)r.new_tokens, r.prefill_s, r.decode_tok_s,
                r.ms_per_step, r.sample_ms_per_step, r.gflops, r.fraction);
  std::printf("decode_b64_fraction_of_gemm: %.3f\n", rows[2].fraction);
  std::fflush(stdout);
  return 0;
}

}  // namespace ctm::tasks
