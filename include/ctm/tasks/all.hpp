// The entry points of every implemented task: add_<task>_options and run_<task>, one file per task in
// src/tasks/.
#pragma once

#include "ctm/tasks/task.hpp"

namespace ctm::tasks {

// (each task adds its two declarations here)

void add_prepare_startup_data_options(po::options_description& desc);
int run_prepare_startup_data(const TaskContext& ctx);

void add_train_ce_options(po::options_description& desc);
int run_train_ce(const TaskContext& ctx);

void add_calculate_ce_score_options(po::options_description& desc);
int run_calculate_ce_score(const TaskContext& ctx);

void add_train_cdpo_options(po::options_description& desc);
int run_train_cdpo(const TaskContext& ctx);

void add_train_sft_options(po::options_description& desc);
int run_train_sft(const TaskContext& ctx);

void add_pipeline_options(po::options_description& desc);
int run_pipeline(const TaskContext& ctx);

void add_sampling_options(po::options_description& desc);
int run_sampling(const TaskContext& ctx);

void add_analyse_options(po::options_description& desc);
int run_analyse(const TaskContext& ctx);

void add_evaluation_options(po::options_description& desc);
int run_evaluation(const TaskContext& ctx);

void add_generate_options(po::options_description& desc);
int run_generate(const TaskContext& ctx);

void add_synth_options(po::options_description& desc);
int run_synth(const TaskContext& ctx);

void add_grade_options(po::options_description& desc);
int run_grade(const TaskContext& ctx);

void add_logprobs_options(po::options_description& desc);
int run_logprobs(const TaskContext& ctx);

void add_merge_options(po::options_description& desc);
int run_merge(const TaskContext& ctx);

void add_pretrain_options(po::options_description& desc);
int run_pretrain(const TaskContext& ctx);

void add_tokenize_options(po::options_description& desc);
int run_tokenize(const TaskContext& ctx);

void add_bench_options(po::options_description& desc);
int run_bench(const TaskContext& ctx);

}  // namespace ctm::tasks
