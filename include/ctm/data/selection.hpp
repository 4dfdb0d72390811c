// Data selection of prepare_startup_data (DESIGN.md §2 "Data selection"): from the graded samples of one
// question, the SFT positive (top-k 1 of the correct answers), the SFT negatives (top-p 0.5 of the incorrect
// answers) and the DPO pair; and the release's SFT and DPO JSON shapes. Pure: no torch, no files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctm/data/prompt.hpp"
#include "ctm/io/json.hpp"

namespace ctm::data {

// One sampled response of a question, graded.
struct GradedResponse {
  std::string text;       // the completion as sampled (without the stop string)
  std::string extracted;  // the grader's extracted answer ("" = none)
  bool correct = false;
};

// The responses of one extracted answer, in shuffled order.
struct AnswerGroup {
  std::string answer;
  bool correct = false;          // the label of its first member (members share their extracted answer)
  std::vector<int64_t> members;  // indices into the question's responses
};

// Shuffles the response indices with ctm::Rng(mix_seed(seed, question_index, 0)), groups them by extracted
// answer (empty answers skipped) and sorts the groups by size, largest first. Ties keep the order in which
// the groups first appear in the shuffled sequence (a stable sort, like Python's Counter.most_common), so the
// order is a function of the seed alone.
std::vector<AnswerGroup> group_by_answer(const std::vector<GradedResponse>& responses, uint64_t seed,
                                         uint64_t question_index);

// What one question contributes. Indices into its responses; -1 = none.
struct QuestionSelection {
  int64_t positive = -1;           // the first (shuffled) member of the largest correct group
  std::vector<int64_t> negatives;  // top-p 0.5: one member of each taken incorrect group, largest first
  int64_t chosen = -1;             // DPO: = positive; set only when rejected is too
  int64_t rejected = -1;           // DPO: the first member of the largest incorrect group
};

// need = ceil(0.5 × incorrect responses with a non-empty answer); walk the incorrect groups largest first and
// take one response of a group while need > 0 and (it is the first taken or the group has more than one
// member), then need -= group size.
QuestionSelection select_responses(const std::vector<GradedResponse>& responses, uint64_t seed,
                                   uint64_t question_index);

// A question with its graded responses, as prepare_startup_data's samples file keeps it.
struct SampledQuestion {
  std::string id;
  std::string question;
  std::vector<std::string> answers;  // gold answers
  std::vector<GradedResponse> responses;
};

// The DPO prompt of a question: the dataset's framing without the few-shot prefix and without the trailing
// space, "Question: q\nAnswer:" (MATH "Problem: q\nSolution:"), so prompt + response is the text the model
// continued (the sampled response starts with its own space, " The answer ...").
std::string dpo_prompt(const PromptFormat& format, const std::string& question);

// SFT {"config": config, "pos": {id: {question, response, answer}}, "neg": {id_k: {...}}}, k = 0, 1, ... per
// question; "answer" is the gold list. selections[i] belongs to questions[i].
Json build_sft_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const Json& config);

// DPO {"config": config, "prompt": [], "chosen": [], "rejected": [], "answer": []}, one entry per question
// with a pair, in question order; "answer" entries are gold lists.
Json build_dpo_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const PromptFormat& format,
                    const Json& config);

}  // namespace ctm::data
