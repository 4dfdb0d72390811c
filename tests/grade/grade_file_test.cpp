// Grading a JSONL file: the library function behind `ctm grade`, its input errors (file:line), and, when the
// ctm binary is built (CTM_BINARY), the command end to end on the same fixtures.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ctm/core/error.hpp"
#include "ctm/grade/grade_file.hpp"
#include "ctm/io/jsonl.hpp"

namespace {

using namespace ctm::grade;

const std::string kFixtures = std::string(CTM_TEST_FIXTURES) + "/grade";

std::string fresh_dir(const std::string& name) {
  std::string dir = testing::TempDir() + "ctm_grade_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

struct Expected {
  const char* file;
  Rules rules;
  GraderKind kind;
  std::vector<bool> labels;
  std::vector<std::string> extracted;
  std::string accuracy;
};

const std::vector<Expected>& expectations() {
  static const std::vector<Expected> e = {
      {"gsm8k_completions.jsonl",
       Rules::GSM8K,
       GraderKind::Paper,
       {true, true, false, false, true},
       {"18", "300", "17", "", "1450007"},
       "accuracy: 0.6000 (3/5)"},
      {"gsm8k_completions.jsonl",
       Rules::GSM8K,
       GraderKind::Math,
       {true, false, false, false, false},
       {"18", "300", "17", "", "1450007"},
       "accuracy: 0.2000 (1/5)"},
      {"math_completions.jsonl",
       Rules::MATH,
       GraderKind::Paper,
       {false, false, false, true},
       {"\\frac{1}{2}", "2^3", "{East}", "24"},
       "accuracy: 0.2500 (1/4)"},
      {"math_completions.jsonl",
       Rules::MATH,
       GraderKind::Math,
       {true, true, true, true},
       {"\\frac{1}{2}", "2^3", "{East}", "24"},
       "accuracy: 1.0000 (4/4)"},
  };
  return e;
}

void check_output(const std::string& out_path, const Expected& e) {
  auto in = ctm::read_jsonl(kFixtures + "/" + e.file);
  auto out = ctm::read_jsonl(out_path);
  ASSERT_EQ(out.size(), e.labels.size()) << e.file << " " << grader_name(e.kind);
  for (size_t i = 0; i < out.size(); ++i) {
    SCOPED_TRACE(std::string(e.file) + " " + grader_name(e.kind) + " line " + std::to_string(i + 1));
    EXPECT_EQ(out[i].at("label").get<bool>(), e.labels[i]);
    EXPECT_EQ(out[i].at("extracted").get<std::string>(), e.extracted[i]);
    // the input line is kept, in its order, before the two new fields
    ctm::Json without = out[i];
    without.erase("extracted");
    without.erase("label");
    EXPECT_EQ(without.dump(), in[i].dump());
    EXPECT_EQ(std::prev(out[i].end()).key(), "label");
  }
}

TEST(GradeFile, LibraryLabelsAndAccuracy) {
  std::string dir = fresh_dir("lib");
  for (const auto& e : expectations()) {
    GradeInput input = read_grade_input(kFixtures + "/" + e.file);
    std::string out_path = dir + "/out.jsonl";
    GradeSummary summary = write_grade_output(out_path, input, grade_records(e.rules, e.kind, input));
    EXPECT_EQ(summary.accuracy_line(), e.accuracy) << e.file << " " << grader_name(e.kind);
    check_output(out_path, e);
  }
}

TEST(GradeFile, StridedShardsCoverEveryLineOnce) {
  GradeInput input = read_grade_input(kFixtures + "/gsm8k_completions.jsonl");
  auto all = grade_records(Rules::GSM8K, GraderKind::Paper, input);
  auto even = grade_records(Rules::GSM8K, GraderKind::Paper, input, 0, 2);
  auto odd = grade_records(Rules::GSM8K, GraderKind::Paper, input, 1, 2);
  ASSERT_EQ(even.size() + odd.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    const Verdict& v = i % 2 ? odd[i / 2] : even[i / 2];
    EXPECT_EQ(v.correct, all[i].correct) << "line " << i + 1;
    EXPECT_EQ(v.extracted, all[i].extracted) << "line " << i + 1;
  }
}

TEST(GradeFile, MaxRecords) {
  EXPECT_EQ(read_grade_input(kFixtures + "/gsm8k_completions.jsonl", 2).records.size(), 2u);
}

TEST(GradeFile, EmptyFileHasZeroAccuracy) {
  std::string dir = fresh_dir("empty");
  write_text(dir + "/in.jsonl", "");
  GradeInput input = read_grade_input(dir + "/in.jsonl");
  GradeSummary s = write_grade_output(dir + "/out.jsonl", input, {});
  EXPECT_EQ(s.accuracy_line(), "accuracy: 0.0000 (0/0)");
}

TEST(GradeFile, BadLinesNameFileAndLine) {
  std::string dir = fresh_dir("bad");
  struct Row {
    const char* second_line;
    const char* message;
  };
  for (const Row& r : std::vector<Row>{
           {"{\"answer\": [\"1\"]}", "missing field \"completion\""},
           {"{\"completion\": \"x\"}", "missing field \"answer\""},
           {"{\"completion\": 5, \"answer\": [\"1\"]}", "\"completion\" must be a string"},
           {"{\"completion\": \"x\", \"answer\": \"1\"}", "\"answer\" must be a list of strings"},
           {"{\"completion\": \"x\", \"answer\": [1]}", "answer[0] must be a string"},
           {"[1, 2]", "expected a JSON object"},
           {"{not json", "in.jsonl:2"},
       }) {
    std::string path = dir + "/in.jsonl";
    write_text(path, std::string("{\"completion\": \"The answer is 1\", \"answer\": [\"1\"]}\n") +
                         r.second_line + "\n");
    try {
      read_grade_input(path);
      ADD_FAILURE() << "accepted: " << r.second_line;
    } catch (const ctm::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path + ":2"), std::string::npos) << msg;
      EXPECT_NE(msg.find(r.message), std::string::npos) << msg;
    }
  }
}

// ---- end to end through the ctm binary (built in the same tree unless this is a torch-free build)

std::string run_command(const std::string& cmd, int* status) {
  std::string output;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  *status = pclose(pipe);
  return output;
}

bool binary_available() {
  struct stat st;
  return std::string(CTM_BINARY).size() > 0 && ::stat(CTM_BINARY, &st) == 0;
}

TEST(GradeCli, EndToEnd) {
  if (!binary_available()) GTEST_SKIP() << "ctm binary not built in this configuration";
  std::string dir = fresh_dir("cli");
  for (const auto& e : expectations()) {
    std::string out_path = dir + "/out.jsonl";
    std::string cmd = std::string(CTM_BINARY) + " grade --dataset_name " +
                      (e.rules == Rules::GSM8K ? "GSM8K" : "MATH") + " --grader " + grader_name(e.kind) +
                      " --input " + kFixtures + "/" + e.file + " --output " + out_path + " 2>/dev/null";
    int status = -1;
    std::string out = run_command(cmd, &status);
    EXPECT_EQ(status, 0) << cmd;
    // the accuracy is the last line of stdout
    std::string last = out;
    while (!last.empty() && last.back() == '\n') last.pop_back();
    last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
    EXPECT_EQ(last, e.accuracy) << cmd << "\n" << out;
    check_output(out_path, e);
  }
}

TEST(GradeCli, ArithUsesGsm8kRulesAndDefaultGraderIsPaper) {
  if (!binary_available()) GTEST_SKIP() << "ctm binary not built in this configuration";
  std::string dir = fresh_dir("cli_arith");
  int status = -1;
  std::string out = run_command(std::string(CTM_BINARY) + " grade --dataset_name ARITH --input " + kFixtures +
                                    "/gsm8k_completions.jsonl --output " + dir + "/o.jsonl 2>/dev/null",
                                &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("accuracy: 0.6000 (3/5)"), std::string::npos) << out;
}

TEST(GradeCli, ErrorsNameTheProblem) {
  if (!binary_available()) GTEST_SKIP() << "ctm binary not built in this configuration";
  std::string dir = fresh_dir("cli_err");
  write_text(dir + "/bad.jsonl", "{\"completion\": \"x\"}\n");
  int status = -1;
  std::string err = run_command(std::string(CTM_BINARY) + " grade --dataset_name MATH --input " + dir +
                                    "/bad.jsonl --output " + dir + "/o.jsonl 2>&1 >/dev/null",
                                &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find(dir + "/bad.jsonl:1"), std::string::npos) << err;
  EXPECT_NE(err.find("answer"), std::string::npos) << err;
  struct stat st;
  EXPECT_NE(::stat((dir + "/o.jsonl").c_str(), &st), 0) << "no output may be left behind on an error";

  err = run_command(std::string(CTM_BINARY) + " grade --dataset_name MATH --grader sympy --input " +
                        kFixtures + "/math_completions.jsonl --output " + dir + "/o.jsonl 2>&1 >/dev/null",
                    &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("sympy"), std::string::npos) << err;
}

}  // namespace
