// The journal behind resumable tasks: what survives a torn or damaged line, and how settings are compared.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/io/journal.hpp"

namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  const fs::path p = fs::path(testing::TempDir()) / "ctm_journal" / name;
  fs::create_directories(p.parent_path());
  fs::remove(p);
  return p.string();
}

}  // namespace

TEST(Journal, RecordsRoundTripWithTheirSettings) {
  const std::string path = temp_path("ok.jsonl");
  const ctm::Json settings = {{"t", 1.0}, {"n", 64}};
  {
    ctm::JournalWriter w(path, settings);
    w.append(3, ctm::Json{{"text", "a"}});
    w.append(1, ctm::Json{{"text", "b\nc"}});
  }
  const ctm::JournalContents j = ctm::read_journal(path);
  EXPECT_TRUE(j.has_header);
  EXPECT_EQ(j.settings, settings);
  ASSERT_EQ(j.records.size(), 2u);
  EXPECT_EQ(j.records[0].item, 3);
  EXPECT_EQ(j.records[1].data["text"], "b\nc");
  EXPECT_TRUE(j.problems.empty());
}

TEST(Journal, DamagedLinesCostOnlyThemselves) {
  const std::string path = temp_path("damaged.jsonl");
  {
    ctm::JournalWriter w(path, ctm::Json{{"t", 1}});
    w.append(0, ctm::Json{{"v", 0}});
  }
  std::ofstream(path, std::ios::app) << "{\"item\": 1, \"data\": {\"v\": 1\n"  // damaged (line 3)
                                     << "[1, 2]\n"                             // not a record (line 4)
                                     << "{\"item\": 2, \"data\": {\"v\": 2}}\n"
                                     << "{\"item\": 3, \"da";  // torn last line (kill -9)
  const ctm::JournalContents j = ctm::read_journal(path);
  ASSERT_EQ(j.records.size(), 2u);  // the valid line after the damage is kept
  EXPECT_EQ(j.records[1].item, 2);
  ASSERT_EQ(j.problems.size(), 3u);
  EXPECT_NE(j.problems[0].find(path + ":3: invalid JSON"), std::string::npos) << j.problems[0];
  EXPECT_NE(j.problems[1].find(path + ":4: not a journal record"), std::string::npos) << j.problems[1];
  EXPECT_NE(j.problems[2].find(path + ":6: incomplete last line"), std::string::npos) << j.problems[2];
}

TEST(Journal, AFileThatIsNotAJournalHasNoHeader) {
  const std::string path = temp_path("plain.jsonl");
  ctm::write_file_atomic(path, "{\"a\": 1}\n");
  const ctm::JournalContents j = ctm::read_journal(path);
  EXPECT_FALSE(j.has_header);
  EXPECT_EQ(j.problems.size(), 1u);
}

TEST(Journal, SettingsDifferencesNameTheKeys) {
  const std::string d = ctm::settings_differences(ctm::Json{{"t", 1.0}, {"seed", 42}, {"n", 64}},
                                                  ctm::Json{{"t", 0.8}, {"seed", 42}, {"lora", "x"}});
  EXPECT_NE(d.find("t: 0.8 there, 1.0 in this run"), std::string::npos) << d;
  EXPECT_NE(d.find("lora: \"x\" there, (absent) in this run"), std::string::npos) << d;
  EXPECT_NE(d.find("n: (absent) there, 64 in this run"), std::string::npos) << d;
  EXPECT_EQ(d.find("seed"), std::string::npos) << d;
}

TEST(Json, IntegersFollowOneRule) {
  auto err = [](const ctm::Json& v) {
    try {
      ctm::json_integer(v, 1, 1000, "\"n\"", "in.jsonl:4");
    } catch (const ctm::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(ctm::json_integer(ctm::Json(7), 1, 1000, "n", "w"), 7);
  EXPECT_EQ(ctm::json_integer(ctm::Json(7.0), 1, 1000, "n", "w"), 7);
  EXPECT_EQ(err(ctm::Json(1e30)), "in.jsonl:4: \"n\" must be an integer in [1, 1000] (got 1e+30)");
  EXPECT_EQ(err(ctm::Json(3.5)), "in.jsonl:4: \"n\" must be an integer in [1, 1000] (got 3.5)");
  EXPECT_EQ(err(ctm::Json(1000000000000LL)),
            "in.jsonl:4: \"n\" must be an integer in [1, 1000] (got 1000000000000)");
  EXPECT_EQ(err(ctm::Json(18446744073709551615ULL)),
            "in.jsonl:4: \"n\" must be an integer in [1, 1000] (got 18446744073709551615)");
  EXPECT_NE(err(ctm::Json("3")).find("(got \"3\")"), std::string::npos);
  EXPECT_NE(err(ctm::Json(0)).find("(got 0)"), std::string::npos);
}

TEST(Json, Base64ArraysRoundTripExactly) {
  const std::vector<float> f = {0.0f, -1.5f, 3.14159265f, 1e-30f, -0.0f};
  for (size_t n = 0; n <= f.size(); ++n) {  // every padding length
    const std::vector<float> part(f.begin(), f.begin() + n);
    const auto back = ctm::floats_from_base64(ctm::Json(ctm::base64_floats(part)), "w");
    ASSERT_EQ(back.size(), n);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(std::memcmp(&back[i], &part[i], 4), 0);
  }
  const std::vector<int32_t> ids = {0, 1, -7, 2147483647, 128000};
  EXPECT_EQ(ctm::ints_from_base64(ctm::Json(ctm::base64_ints(ids)), "w"), ids);
  EXPECT_EQ(ctm::base64_ints({1}), "AQAAAA==");  // RFC 4648 of the bytes 01 00 00 00
  for (const char* bad : {"AQA", "AQAAAA=A", "A*AAAA==", "AQAA"})
    EXPECT_THROW(ctm::ints_from_base64(ctm::Json(bad), "w"), ctm::Error) << bad;
}
