// ctm pipeline: the paper's method end to end on one model and data set, as one SPMD program:
// prepare_startup_data -> train_ce -> calculate_ce_score -> train_cdpo (cDPO in both loss forms) and the
// baselines (train_sft, DPO, RPO), each model evaluated greedily on the test split, then the paper's Table 1
// in small: one line per method. Each stage runs the task itself, in this process, with the arguments a user
// would give it; a stage that finished with the same arguments is skipped (its marker in
// output/<model>/<dataset>/pipeline/), so a rerun after a stop or a kill goes on. The hyper-parameters that
// suit a model live in an options file (--pipeline_config; data/pipeline/<model>-<dataset>.ini when it
// exists, which is how tiny gets its own): keys before any section go to every stage that uses the startup
// data, [task] sections to that task's stages.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/io/json.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/plan.hpp"

namespace ctm::tasks {
namespace fs = std::filesystem;

void add_pipeline_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("pipeline_config", po::value<std::string>()->default_value(""),
     "options of the stages (default: data/pipeline/<model>-<dataset>.ini if it exists, else the paper's defaults)")
    ("stages", po::value<std::string>()->default_value(""), "run only these stages (comma list; default: all)");
  // clang-format on
  add_dry_run_option(desc);
}

namespace {

struct Stage {
  std::string name, task;
  std::vector<std::string> args;  // the stage's own, before the shared ones
  std::string row;                // Table 1's row for an evaluation stage, else ""
};

// The stages in order; an evaluation follows the training it evaluates.
std::vector<Stage> stages(const std::string& ckpt) {
  auto eval = [&](const std::string& name, const std::string& adapter, const std::string& row) {
    Stage s{name, "evaluation", {"--t", "0"}, row};
    if (!adapter.empty()) s.args.insert(s.args.end(), {"--lora_path", ckpt + "/" + adapter});
    return s;
  };
  return {{"prepare", "prepare_startup_data", {}, ""},
          eval("eval_base", "", "Baseline"),
          {"train_ce", "train_ce", {}, ""},
          {"ce_score", "calculate_ce_score", {}, ""},
          {"sft", "train_sft", {}, ""},
          eval("eval_sft", "sft_chosen", "SFT"),
          {"dpo", "train_cdpo", {"--loss", "dpo"}, ""},
          eval("eval_dpo", "dpo", "DPO"),
          {"rpo", "train_cdpo", {"--loss", "rpo"}, ""},
          eval("eval_rpo", "rpo", "RPO"),
          {"cdpo", "train_cdpo", {"--loss", "cdpo", "--cdpo_loss", "sequence"}, ""},
          eval("eval_cdpo", "cdpo", "cDPO"),
          {"cdpo_token", "train_cdpo", {"--loss", "cdpo", "--cdpo_loss", "token"}, ""},
          eval("eval_cdpo_token", "cdpo_token", "cDPO-token")};
}

// The options file: key -> value for the keys before any section ("" section) and per [section].
using ConfigSections = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;
ConfigSections read_config(const std::string& path) {
  ConfigSections out;
  if (path.empty()) return out;
  std::istringstream in(read_file(path));
  try {
    const auto parsed = po::parse_config_file(in, po::options_description(), /*allow_unregistered=*/true);
    for (const auto& o : parsed.options) {
      const auto dot = o.string_key.find('.');
      const std::string section = dot == std::string::npos ? "" : o.string_key.substr(0, dot);
      const std::string key = dot == std::string::npos ? o.string_key : o.string_key.substr(dot + 1);
      out[section].push_back({key, o.value.empty() ? "" : o.value[0]});
    }
  } catch (const po::error& e) {
    throw UsageError(str("--pipeline_config '", path, "': ", e.what()));
  }
  for (const auto& [key, value] : out[""])
    if (key != "max_questions" && key != "sampling_n" && key != "t")
      throw UsageError(
          str("--pipeline_config '", path, "': '", key,
              "' before any [task] section; only max_questions, sampling_n and t go to every stage"));
  return out;
}

std::string config_path(const TaskContext& ctx) {
  const std::string given = ctx.vm["pipeline_config"].as<std::string>();
  if (!given.empty()) return given;
  const std::string name = ctx.common.model_name.empty() ? fs::path(ctx.common.model_path).filename().string()
                                                         : ctx.common.model_name;
  const std::string by_model = data_dir() + "/pipeline/" + name + "-" + ctx.common.dataset_name + ".ini";
  return file_exists(by_model) ? by_model : std::string();
}

// The arguments of a stage: its own, the options file's, then what every stage shares.
std::vector<std::string> stage_args(const TaskContext& ctx, const Stage& stage,
                                    const ConfigSections& config) {
  const CommonOptions& c = ctx.common;
  std::vector<std::string> args = stage.args;
  auto add = [&](const std::string& key, const std::string& value) {
    args.push_back("--" + key);
    args.push_back(value);
  };
  const bool evaluation = stage.task == "evaluation";
  if (!evaluation) {
    // The command line's values, which win over the options file's top-level keys.
    std::vector<std::pair<std::string, std::string>> given;
    if (option_given(ctx, "t")) given.emplace_back("t", str(c.t));
    if (option_given(ctx, "sampling_n")) given.emplace_back("sampling_n", str(c.sampling_n));
    if (c.max_questions > 0) given.emplace_back("max_questions", str(c.max_questions));
    auto on_command_line = [&](const std::string& key) {
      return std::any_of(given.begin(), given.end(), [&](const auto& kv) { return kv.first == key; });
    };
    if (auto it = config.find(""); it != config.end())
      for (const auto& [k, v] : it->second)
        if (!on_command_line(k)) add(k, v);
    for (const auto& [k, v] : given) add(k, v);
  }
  if (auto it = config.find(stage.task); it != config.end())
    for (const auto& [k, v] : it->second) add(k, v);
  if (!c.model_name.empty()) add("model_name", c.model_name);
  if (!c.model_path.empty()) add("model_path", c.model_path);
  add("dataset_name", c.dataset_name);
  add("output_dir", c.output_dir);
  add("seed", str(c.seed));
  add("device", c.device);
  add("log_level", c.log_level);
  return args;
}

struct StageResult {
  double seconds = 0;
  bool skipped = false;
};

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

// What a stage's marker must hold for the stage to count as done: its task and every argument but the log
// level.
Json stage_key(const Stage& stage, const std::vector<std::string>& args) {
  std::vector<std::string> key = args;
  for (size_t i = 0; i + 1 < key.size(); ++i)
    if (key[i] == "--log_level") key.erase(key.begin() + i, key.begin() + i + 2);
  return {{"task", stage.task}, {"args", key}};
}

// The marker of a stage that finished with these arguments, else null.
Json finished_marker(const Stage& stage, const std::vector<std::string>& args, const std::string& marker) {
  if (!file_exists(marker)) return nullptr;
  const Json done = read_json_file(marker);
  const Json wanted = stage_key(stage, args);
  if (done.value("task", Json()) == wanted["task"] && done.value("args", Json()) == wanted["args"])
    return done;
  return nullptr;
}

// Runs a stage unless its marker says it finished with these arguments; writes the marker when it finishes.
StageResult run_stage(const TaskContext& ctx, const Stage& stage, const std::vector<std::string>& args,
                      const std::string& marker) {
  if (const Json done = finished_marker(stage, args, marker); !done.is_null())
    return {done.value("seconds", 0.0), true};
  const TaskInfo* task = find_task(stage.task);
  CTM_CHECK(task && task->run, "pipeline: task ", stage.task, " is not available");
  CommonOptions common;
  const po::variables_map vm = parse_task_options(*task, args, common);
  spdlog::info("pipeline: {} (ctm {} {})", stage.name, stage.task, joined(args));
  const auto t0 = std::chrono::steady_clock::now();
  task->run(TaskContext{common, vm, ctx.comm});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (ctx.comm.rank() == 0) {
    Json done = stage_key(stage, args);
    done["seconds"] = seconds;
    write_json_file_atomic(marker, done);
  }
  ctx.comm.barrier();
  return {seconds, false};
}

// The accuracy an evaluation stage wrote (its summary).
double stage_accuracy(const std::vector<std::string>& args) {
  CommonOptions common;
  const po::variables_map vm = parse_task_options(*find_task("evaluation"), args, common);
  const std::string summary = evaluation_paths(common, resolve_model_path(common), 1).summary;
  return read_json_file(summary).at("accuracy").get<double>();
}

bool selected(const std::string& list, const std::string& name) {
  if (list.empty()) return true;
  std::stringstream ss(list);
  for (std::string s; std::getline(ss, s, ',');)
    if (s == name) return true;
  return false;
}

void check_stage_names(const std::string& list, const std::vector<Stage>& all) {
  std::stringstream ss(list);
  for (std::string s; std::getline(ss, s, ',');) {
    bool known = false;
    std::string names;
    for (const Stage& stage : all) {
      known = known || stage.name == s;
      names += (names.empty() ? "" : ", ") + stage.name;
    }
    if (!known) throw UsageError(str("--stages: no stage '", s, "'; the stages are ", names));
  }
}

}  // namespace

int run_pipeline(const TaskContext& ctx) {
  const CommonOptions& c = ctx.common;
  if (c.dataset_name.empty()) throw UsageError("pipeline needs --dataset_name GSM8K|MATH|ARITH");
  const std::string model_dir = resolve_model_path(c);
  const std::string model = model_label(c, model_dir);
  const std::string cfg_path = config_path(ctx);
  const ConfigSections config = read_config(cfg_path);
  const std::string only = ctx.vm["stages"].as<std::string>();
  check_stage_names(only, stages(""));
  const std::string ckpt = output_path(c, "checkpoints/" + model + "/" + c.dataset_name);
  const std::string out_dir = output_path(c, "output/" + model + "/" + c.dataset_name);
  if (dry_run(ctx)) {
    Plan plan("pipeline");
    plan.model(ctx, check_model_folder(model_dir));
    plan.add("options", cfg_path.empty() ? "(the defaults)" : cfg_path);
    for (const Stage& stage : stages(ckpt)) {
      if (!selected(only, stage.name)) continue;
      const std::vector<std::string> args = stage_args(ctx, stage, config);
      const bool done =
          !finished_marker(stage, args, out_dir + "/pipeline/" + stage.name + ".json").is_null();
      plan.add(stage.name, str(done ? "done, skipped" : "runs", ": ctm ", stage.task, " ", joined(args)));
    }
    plan.add("outputs", str(out_dir, "/pipeline.json, the table on stdout"));
    plan.print(ctx);
    return 0;
  }
  check_output_dir(out_dir + "/pipeline");
  spdlog::info("pipeline: {} on {}, options {}", model, c.dataset_name,
               cfg_path.empty() ? "(defaults)" : cfg_path);

  Json report = {{"model_name", model},     {"dataset_name", c.dataset_name},
                 {"seed", c.seed},          {"pipeline_config", cfg_path},
                 {"stages", Json::array()}, {"results", Json::object()}};
  std::vector<std::pair<std::string, double>> table;
  for (const Stage& stage : stages(ckpt)) {
    if (!selected(only, stage.name)) continue;
    const std::vector<std::string> args = stage_args(ctx, stage, config);
    const StageResult r = run_stage(ctx, stage, args, out_dir + "/pipeline/" + stage.name + ".json");
    Json entry = {
        {"stage", stage.name}, {"task", stage.task}, {"seconds", r.seconds}, {"skipped", r.skipped}};
    if (!stage.row.empty()) {
      const double accuracy = stage_accuracy(args);
      entry["accuracy"] = accuracy;
      report["results"][stage.row] = accuracy;
      table.emplace_back(stage.row, accuracy);
    }
    report["stages"].push_back(entry);
    spdlog::info("pipeline: {} {} ({:.0f} s)", stage.name, r.skipped ? "already done" : "done", r.seconds);
  }
  if (ctx.comm.rank() != 0) return 0;
  write_json_file_atomic(out_dir + "/pipeline.json", report);
  double total = 0;
  for (const Json& s : report["stages"]) {
    const double secs = s["seconds"].get<double>();
    total += secs;
    std::printf("stage %-16s %7.0f s%s\n", s["stage"].get<std::string>().c_str(), secs,
                s["skipped"].get<bool>() ? "  (done earlier)" : "");
  }
  std::printf("stages in all      %7.0f s\n", total);
  for (const auto& [row, accuracy] : table) std::printf("%s: %.2f%%\n", row.c_str(), accuracy);
  std::fflush(stdout);
  return 0;
}

}  // namespace ctm::tasks
