#include "ctm/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <sstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/rng.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/io/json.hpp"
#include "ctm/train/batching.hpp"

namespace ctm::train {
namespace {

constexpr const char* kFormat = "ctm-trainer-checkpoint-1";
constexpr uint64_t kValidSeedItem = ~uint64_t{0};  // the rng stream of validation batches

// Lockstep: with several ranks, every rank runs the same number of forward and backward passes, a rank
// without a micro-batch in a round (the last round of an epoch, or of a validation) running a pass whose
// result is dropped, so that collectives inside the loss (a sharded model's per-layer all-gathers) meet
// their partners on every rank.
int64_t rounds(int64_t batches, int64_t world) {
  return (batches + world - 1) / world;
}
// The cheapest batch for such a pass: one example of a batch every rank has.
std::vector<int64_t> padding_batch(const std::vector<int64_t>& batch) {
  return {batch.front()};
}

Json record_to_json(const LogRecord& r) {
  Json j = {{"step", r.step}, {"epoch", r.epoch},         {"lr", r.lr},
            {"loss", r.loss}, {"grad_norm", r.grad_norm}, {"units", r.units}};
  for (const auto& [k, v] : r.metrics) j["metrics"][k] = v;
  if (r.valid_loss) j["valid_loss"] = *r.valid_loss;
  return j;
}

LogRecord record_from_json(const Json& j) {
  LogRecord r;
  r.step = j.at("step").get<int64_t>();
  r.epoch = j.at("epoch").get<int64_t>();
  r.lr = j.at("lr").get<double>();
  r.loss = j.at("loss").get<double>();
  r.grad_norm = j.at("grad_norm").get<double>();
  r.units = j.at("units").get<double>();
  if (j.contains("metrics"))
    for (const auto& [k, v] : j.at("metrics").items()) r.metrics[k] = v.get<double>();
  if (j.contains("valid_loss")) r.valid_loss = j.at("valid_loss").get<double>();
  return r;
}

// Doubles survive the JSON round trip exactly (nlohmann prints the shortest representation that reads back).
Json optional_to_json(const std::optional<double>& v) {
  return v ? Json(*v) : Json(nullptr);
}
std::optional<double> optional_from_json(const Json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<double>();
}

}  // namespace

Trainer::Trainer(std::vector<TrainableParam> params, TrainerOptions opts, Collective* collective)
    : params_(params),
      opts_(std::move(opts)),
      collective_(collective),
      optimizer_(std::move(params), opts_.adamw) {
  CTM_CHECK(opts_.micro_batch_size > 0 && opts_.grad_accum_steps > 0, "micro-batch size ",
            opts_.micro_batch_size, " and accumulation steps ", opts_.grad_accum_steps, " must be positive");
  CTM_CHECK(opts_.epochs > 0 || opts_.max_steps > 0, "training needs epochs > 0 or max_steps > 0");
  CTM_CHECK(opts_.lr >= 0.0, "learning rate ", opts_.lr, " must be >= 0");
  if (opts_.eval_batch_size <= 0) opts_.eval_batch_size = opts_.micro_batch_size;
  if (!opts_.should_stop) opts_.should_stop = [] { return ctm::stop_requested(); };
}

int64_t count_updates(const TrainerOptions& opts, int64_t examples, int64_t world) {
  if (opts.max_steps > 0) return opts.max_steps;
  const int64_t micro_batches = (examples + opts.micro_batch_size - 1) / opts.micro_batch_size;
  const int64_t group = opts.grad_accum_steps * world;
  return opts.epochs * ((micro_batches + group - 1) / group);
}

// The gradient of an update is summed over its micro-batches in float64 (each micro-batch's float32 gradient
// added as it comes, then the ranks' sums all-reduced): those sums are exact, or as good as, whatever the
// order, so one rank accumulating 6 micro-batches and 3 ranks taking 2 each make the same float32 gradient.
// Summed in float32, the order would change the last bits, and AdamW's first updates (about lr x sign(g))
// turn a flipped sign of a near-zero component into a difference of 2 lr.
void Trainer::zero_grad_sums() {
  torch::NoGradGuard no_grad;
  if (grad_sums_.empty())
    for (const auto& p : params_) grad_sums_.push_back(torch::zeros_like(p.tensor, torch::kFloat64));
  for (auto& s : grad_sums_) s.zero_();
}

void Trainer::add_grads_to_sums() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& g = params_[i].tensor.mutable_grad();
    if (!g.defined()) continue;
    grad_sums_[i].add_(g);
    g.zero_();
  }
}

void Trainer::sums_to_grads(int64_t world) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (world > 1) collective_->all_reduce_sum(grad_sums_[i]);
    params_[i].tensor.mutable_grad() = grad_sums_[i].to(params_[i].tensor.scalar_type());
  }
}

int64_t Trainer::total_steps(const std::vector<int64_t>& train_lengths) const {
  return count_updates(opts_, static_cast<int64_t>(train_lengths.size()),
                       collective_ ? collective_->size() : 1);
}

std::string Trainer::fingerprint(const Split& train, const Split& valid) const {
  // Everything that decides the sequence of updates: resuming with any of it changed would silently train
  // something else, so a mismatch is an error.
  Json params = Json::array();
  for (const auto& p : params_) params.push_back({p.name, p.tensor.sizes().vec(), p.decay});
  int64_t train_tokens = 0;
  for (auto l : train.lengths) train_tokens += l;
  Json j = {{"lr", opts_.lr},
            {"betas", {opts_.adamw.beta1, opts_.adamw.beta2}},
            {"eps", opts_.adamw.eps},
            {"weight_decay", opts_.adamw.weight_decay},
            {"schedule", schedule_name(opts_.schedule.kind)},
            {"warmup_steps", opts_.schedule.warmup_steps},
            {"warmup_ratio", opts_.schedule.warmup_ratio},
            {"min_lr_ratio", opts_.schedule.min_lr_ratio},
            {"max_grad_norm", opts_.max_grad_norm},
            {"micro_batch_size", opts_.micro_batch_size},
            {"grad_accum_steps", opts_.grad_accum_steps},
            {"epochs", opts_.epochs},
            {"max_steps", opts_.max_steps},
            {"megabatch", opts_.megabatch},
            {"seed", opts_.seed},
            {"world_size", collective_ ? collective_->size() : 1},
            {"train_examples", train.lengths.size()},
            {"train_tokens", train_tokens},
            {"valid_examples", valid.lengths.size()},
            {"params", params}};
  return j.dump();
}

void Trainer::reduce(std::vector<double>& values) {
  if (!collective_ || collective_->size() == 1 || values.empty()) return;
  auto t = torch::tensor(values, torch::kFloat64);
  collective_->all_reduce_sum(t);
  auto a = t.accessor<double, 1>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = a[i];
}

void Trainer::save_checkpoint(const State& st, const std::string& fp) {
  if (opts_.checkpoint_dir.empty()) return;
  if (collective_ && collective_->rank() != 0) return;  // parameters and moments are identical on every rank
  torch::NoGradGuard no_grad;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("fingerprint", c10::IValue(fp));
  Json state = {{"step", st.step},
                {"epoch", st.epoch},
                {"batch_pos", st.batch_pos},
                {"finished", st.finished},
                {"best_valid_loss", optional_to_json(st.best_valid)},
                {"last_valid_loss", optional_to_json(st.last_valid)},
                {"adam_steps", optimizer_.steps_taken()},
                {"history", Json::array()}};
  for (const auto& r : st.history) state["history"].push_back(record_to_json(r));
  archive.write("state", c10::IValue(state.dump()));
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto n = std::to_string(i);
    archive.write("param_" + n, params_[i].tensor.detach(), /*is_buffer=*/true);
    archive.write("exp_avg_" + n, optimizer_.exp_avg()[i], true);
    archive.write("exp_avg_sq_" + n, optimizer_.exp_avg_sq()[i], true);
    if (!best_params_.empty()) archive.write("best_" + n, best_params_[i], true);
  }
  const auto path = checkpoint_file(opts_.checkpoint_dir);
  // Serialised in memory first: torch's zip writer finishes the file in its destructor and terminates the
  // process if the stream failed (a full disk), so the file is written by AtomicFile, which reports it.
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = std::move(bytes).str();
  AtomicFile out(path);
  out.stream().write(data.data(), static_cast<std::streamsize>(data.size()));
  out.commit();
  // A readable summary beside it (the .pt is the truth): progress and the loss curve.
  state.erase("adam_steps");
  write_json_file_atomic(opts_.checkpoint_dir + "/trainer_state.json", state);
  spdlog::info("{}: checkpoint at step {} -> {}", opts_.label, st.step, path);
}

bool Trainer::load_checkpoint(State& st, const std::string& fp) {
  if (opts_.checkpoint_dir.empty()) return false;
  const auto path = checkpoint_file(opts_.checkpoint_dir);
  if (!file_exists(path)) return false;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw Error(str("checkpoint '", path, "' is unreadable (", e.what_without_backtrace(), ")"));
  }
  c10::IValue v;
  CTM_CHECK(archive.try_read("format", v) && v.isString() && v.toStringRef() == kFormat, "checkpoint '", path,
            "' is not a ", kFormat, " file");
  archive.read("fingerprint", v);
  CTM_CHECK(v.toStringRef() == fp, "checkpoint '", path,
            "' was written by a run with other settings or data; remove it to start afresh.\n  checkpoint: ",
            v.toStringRef(), "\n  this run:   ", fp);
  archive.read("state", v);
  const Json state = parse_json(v.toStringRef(), path + " (state)");
  st.step = state.at("step").get<int64_t>();
  st.epoch = state.at("epoch").get<int64_t>();
  st.batch_pos = state.at("batch_pos").get<int64_t>();
  st.finished = state.at("finished").get<bool>();
  st.best_valid = optional_from_json(state.at("best_valid_loss"));
  st.last_valid = optional_from_json(state.at("last_valid_loss"));
  st.history.clear();
  for (const auto& r : state.at("history")) st.history.push_back(record_from_json(r));
  optimizer_.set_steps_taken(state.at("adam_steps").get<int64_t>());

  torch::NoGradGuard no_grad;
  best_params_.clear();
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto n = std::to_string(i);
    auto load_into = [&](const std::string& key, torch::Tensor& dst) {
      torch::Tensor t;
      archive.read(key, t, /*is_buffer=*/true);
      CTM_CHECK(t.sizes() == dst.sizes(), "checkpoint '", path, "': ", key, " of '", params_[i].name,
                "' has shape ", t.sizes(), ", expected ", dst.sizes());
      dst.copy_(t);
    };
    auto p = params_[i].tensor.detach();
    load_into("param_" + n, p);
    load_into("exp_avg_" + n, optimizer_.exp_avg()[i]);
    load_into("exp_avg_sq_" + n, optimizer_.exp_avg_sq()[i]);
    torch::Tensor best;
    if (archive.try_read("best_" + n, best, true)) best_params_.push_back(best.to(p.options()));
  }
  CTM_CHECK(best_params_.empty() || best_params_.size() == params_.size(), "checkpoint '", path,
            "' has best parameters for only some tensors");
  spdlog::info("{}: resumed from {} at step {} (epoch {})", opts_.label, path, st.step, st.epoch);
  return true;
}

double Trainer::validate(const Split& valid) {
  if (valid.lengths.empty()) return std::numeric_limits<double>::quiet_NaN();
  const int64_t world = collective_ ? collective_->size() : 1;
  const int64_t rank = collective_ ? collective_->rank() : 0;
  const auto batches = sorted_batches(valid.lengths, opts_.eval_batch_size);
  torch::NoGradGuard no_grad;
  std::vector<double> totals = {0.0, 0.0};
  const int64_t n = static_cast<int64_t>(batches.size());
  for (int64_t round = 0; round < rounds(n, world); ++round) {
    const int64_t j = round * world + rank;
    if (j >= n) {  // no batch of mine in this round: a pass whose result is dropped (see rounds())
      valid.loss(padding_batch(batches.front()), false);
      continue;
    }
    torch::manual_seed(mix_seed(opts_.seed, kValidSeedItem, static_cast<uint64_t>(j)));
    const auto terms = valid.loss(batches[static_cast<size_t>(j)], false);
    totals[0] += terms.sum.item<double>();
    totals[1] += terms.count;
  }
  reduce(totals);
  return totals[1] > 0 ? totals[0] / totals[1] : std::numeric_limits<double>::quiet_NaN();
}

TrainResult Trainer::fit(const Split& train, const Split& valid) {
  CTM_CHECK(!train.lengths.empty(), opts_.label, ": the training split is empty");
  const int64_t world = collective_ ? collective_->size() : 1;
  const int64_t rank = collective_ ? collective_->rank() : 0;
  const std::string fp = fingerprint(train, valid);
  const int64_t total = total_steps(train.lengths);
  const int64_t group = opts_.grad_accum_steps * world;  // micro-batches per update, all ranks together

  State st;
  TrainResult result;
  result.resumed = load_checkpoint(st, fp);
  result.total_steps = total;
  spdlog::info("{}: {} examples, {} updates of {} micro-batches of {} ({} ranks), warm-up {}, peak lr {}",
               opts_.label, train.lengths.size(), total, group, opts_.micro_batch_size, world,
               warmup_steps(opts_.schedule, total), opts_.lr);

  auto batches =
      length_grouped_batches(train.lengths, opts_.micro_batch_size, opts_.megabatch, opts_.seed, st.epoch);
  std::vector<std::string> metric_keys;
  for (const auto& r : st.history) {
    if (!r.metrics.empty()) {
      for (const auto& kv : r.metrics) metric_keys.push_back(kv.first);
      break;
    }
  }
  auto window_start = std::chrono::steady_clock::now();
  std::clock_t window_cpu = std::clock();  // this process's CPU time: on a shared machine, the work it did
  double window_units = 0.0;
  int64_t window_updates = 0;

  while (!st.finished && st.step < total) {
    if (st.batch_pos >= static_cast<int64_t>(batches.size())) {
      ++st.epoch;
      st.batch_pos = 0;
      batches = length_grouped_batches(train.lengths, opts_.micro_batch_size, opts_.megabatch, opts_.seed,
                                       st.epoch);
    }
    const int64_t begin = st.batch_pos;
    const int64_t end = std::min<int64_t>(static_cast<int64_t>(batches.size()), begin + group);

    optimizer_.zero_grad();
    zero_grad_sums();
    double loss_sum = 0.0, units = 0.0;
    std::map<std::string, double> metric_sums;
    for (int64_t round = 0; round < rounds(end - begin, world); ++round) {
      const int64_t j = begin + round * world + rank;
      if (j >= end) {  // no micro-batch of mine in this round: a zero-weighted pass (see rounds())
        auto terms = train.loss(padding_batch(batches[begin]), true);
        if (terms.sum.requires_grad()) (terms.sum * 0.0).backward();
        add_grads_to_sums();
        continue;
      }
      // Dropout and any other draw of the loss come from torch's generator, reseeded per micro-batch: a
      // resumed run draws what the uninterrupted one drew without saving generator state.
      torch::manual_seed(
          mix_seed(opts_.seed, static_cast<uint64_t>(st.step), static_cast<uint64_t>(j - begin)));
      auto terms = train.loss(batches[j], true);
      if (terms.sum.requires_grad()) terms.sum.backward();
      add_grads_to_sums();
      loss_sum += terms.sum.item<double>();
      units += terms.count;
      for (const auto& [k, v] : terms.metrics) metric_sums[k] += v;
    }
    if (metric_keys.empty())
      for (const auto& kv : metric_sums) metric_keys.push_back(kv.first);

    sums_to_grads(world);
    std::vector<double> totals = {loss_sum, units};
    for (const auto& k : metric_keys) totals.push_back(metric_sums[k]);
    reduce(totals);
    loss_sum = totals[0];
    units = totals[1];
    if (units > 0) {
      torch::NoGradGuard no_grad;
      for (auto& p : params_) {
        auto& g = p.tensor.mutable_grad();
        if (g.defined()) g.div_(units);
      }
    }
    if (!std::isfinite(loss_sum))
      throw Error(str(opts_.label, ": the loss is not finite at update ", st.step + 1,
                      " (a broken model, or a learning rate far too high); the last checkpoint is kept"));
    const double grad_norm = clip_grad_norm(params_, opts_.max_grad_norm);
    const double lr = opts_.lr * lr_multiplier(opts_.schedule, st.step, total);
    optimizer_.step(lr);
    ++st.step;
    st.batch_pos = end;
    window_units += units;
    ++window_updates;

    LogRecord rec;
    rec.step = st.step;
    rec.epoch = st.epoch;
    rec.lr = lr;
    rec.loss = units > 0 ? loss_sum / units : 0.0;
    rec.grad_norm = grad_norm;
    rec.units = units;
    for (size_t k = 0; k < metric_keys.size(); ++k)
      rec.metrics[metric_keys[k]] = units > 0 ? totals[2 + k] / units : 0.0;

    if (st.step == total) st.finished = true;
    const bool eval_due = (opts_.eval_every > 0 && st.step % opts_.eval_every == 0) || st.finished;
    if (eval_due && !valid.lengths.empty()) {
      const double v = validate(valid);
      rec.valid_loss = v;
      st.last_valid = v;
      if (!st.best_valid || v < *st.best_valid) {
        st.best_valid = v;
        if (opts_.keep_best) {
          torch::NoGradGuard no_grad;
          best_params_.clear();
          for (const auto& p : params_) best_params_.push_back(p.tensor.detach().clone());
        }
      }
      spdlog::info("{}: step {}/{} validation loss {:.4f} (best {:.4f})", opts_.label, st.step, total, v,
                   *st.best_valid);
    }
    if (opts_.log_every > 0 && (st.step % opts_.log_every == 0 || st.finished)) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      const double cpu = static_cast<double>(std::clock() - window_cpu) / CLOCKS_PER_SEC;
      spdlog::info(
          "{}: step {}/{} epoch {} loss {:.4f} lr {:.3e} grad_norm {:.3f} ({:.3f} s/update, CPU {:.3f} "
          "s/update, "
          "{:.3g} units/s)",
          opts_.label, st.step, total, st.epoch, rec.loss, lr, grad_norm, secs / window_updates,
          cpu / window_updates, secs > 0 ? window_units / secs : 0.0);
      window_start = std::chrono::steady_clock::now();
      window_cpu = std::clock();
      window_units = 0.0;
      window_updates = 0;
    }
    st.history.push_back(std::move(rec));

    std::vector<double> stop = {opts_.should_stop() ? 1.0 : 0.0};
    reduce(stop);  // every rank stops at the same update
    const bool stopping = stop[0] > 0.0 && !st.finished;
    const bool ckpt_due = opts_.checkpoint_every > 0 && st.step % opts_.checkpoint_every == 0;
    if (stopping || ckpt_due || st.finished) save_checkpoint(st, fp);
    if (stopping) {
      spdlog::warn("{}: stop requested; checkpoint written at step {}", opts_.label, st.step);
      result.stopped = true;
      break;
    }
  }

  if (opts_.keep_best && !best_params_.empty() && st.finished) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) params_[i].tensor.detach().copy_(best_params_[i]);
    spdlog::info("{}: restored the parameters of the best validation loss {:.4f}", opts_.label,
                 *st.best_valid);
  }
  result.steps_done = st.step;
  result.best_valid_loss = st.best_valid;
  result.last_valid_loss = st.last_valid;
  result.history = std::move(st.history);
  return result;
}

}  // namespace ctm::train
