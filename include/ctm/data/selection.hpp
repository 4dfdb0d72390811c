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

// SFT {"config": config, "pos": {id: {question, response, answer}}, "neg": {id_k: {...}}}, k = 0, 1, ... per
// question; "answer" is the gold list, "response" the sample with python_strip (the release's convention).
// selections[i] belongs to questions[i].
Json build_sft_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const Json& config);

// DPO {"config": config, "prompt": [], "chosen": [], "rejected": [], "answer": []}, one entry per question
// with a pair, in question order; "answer" entries are gold lists. As the release (DESIGN.md §2): "prompt" is
// prompts.framed(question) (few-shot prefix, "Question: q\nAnswer: " with its trailing space), chosen and
// rejected are the samples with python_strip, so prompt + chosen is the sampled text.
Json build_dpo_json(const std::vector<SampledQuestion>& questions,
                    const std::vector<QuestionSelection>& selections, const PromptBuilder& prompts,
                    const Json& config);

// The two files read back (ours, or the release's files of the same shape; "config" is optional).
struct SftExample {
  std::string id, question, response;
  std::vector<std::string> answers;
};
struct SftData {
  std::vector<SftExample> pos, neg;  // in file order
};
SftData read_sft_json(const std::string& path);

struct DpoPairText {
  std::string prompt, chosen, rejected;
  std::vector<std::string> answers;
};
std::vector<DpoPairText> read_dpo_json(const std::string& path);

}  // namespace ctm::data
