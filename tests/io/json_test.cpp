#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"
#include "ctm/io/jsonl.hpp"

namespace fs = std::filesystem;

namespace {
std::string temp_file(const std::string& name, const std::string& content) {
  const fs::path p = fs::path(testing::TempDir()) / name;
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ctm::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Jsonl, ReadsRecordsSkippingBlankLinesAndCRLF) {
  const auto path = temp_file("ok.jsonl", "{\"a\": 1}\r\n\n  \n{\"a\": 2, \"b\": \"x\"}\n[3]");
  auto records = ctm::read_jsonl(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["a"], 1);
  EXPECT_EQ(records[1]["b"], "x");
  EXPECT_EQ(records[2][0], 3);
  EXPECT_EQ(ctm::read_jsonl(path, 2).size(), 2u);
}

TEST(Jsonl, ErrorNamesFileAndLine) {
  const auto path = temp_file("bad.jsonl", "{\"a\": 1}\n\n{\"a\": }\n");
  const std::string msg = error_of([&] { ctm::read_jsonl(path); });
  EXPECT_NE(msg.find(path + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
}

TEST(Jsonl, HostileInputsGiveErrorsNotCrashes) {
  for (const std::string& text :
       {std::string("{\"a\":\"\\ud800\"}"), std::string(100000, '['), std::string("{\"a\":1e99999}"),
        std::string("\xff\xfe{}", 4), std::string("{\"a\":\"\xc3\"}"), std::string("nul\0l", 5)}) {
    const auto path = temp_file("hostile.jsonl", text + "\n");
    try {
      ctm::read_jsonl(path);
    } catch (const ctm::Error& e) {
      EXPECT_NE(std::string(e.what()).find("hostile.jsonl:1"), std::string::npos) << e.what();
    }
  }
}

TEST(Json, DeepNestingIsAnErrorNamingTheLine) {
  // Valid JSON nested 100,000 deep: parsing would succeed, but dumping or destroying it overflowed the stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto path = temp_file("deep.jsonl", "{\"a\": 1}\n" + deep + "\n");
  const std::string msg = error_of([&] { ctm::read_jsonl(path); });
  EXPECT_NE(msg.find("deep.jsonl:2: invalid JSON: nested deeper than 512 levels"), std::string::npos) << msg;
  // Brackets inside strings do not count; 512 levels are accepted.
  const std::string ok = std::string(512, '[') + "\"[[[{{{\\\"\"" + std::string(512, ']');
  EXPECT_NO_THROW(ctm::parse_json(ok, "ok.json"));
  EXPECT_NE(error_of([&] { ctm::parse_json("[" + ok + "]", "x.json"); }).find("x.json: invalid JSON: nested"),
            std::string::npos);
}

TEST(Jsonl, WriterIsAtomicAndKeepsKeyOrder) {
  const fs::path path = fs::path(testing::TempDir()) / "w" / "out.jsonl";
  fs::remove_all(path.parent_path());
  {
    ctm::JsonlWriter w(path.string());
    ctm::Json r;
    r["zeta"] = 1;
    r["alpha"] = "two";
    w.write(r);
    EXPECT_FALSE(fs::exists(path));
    w.commit();
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "{\"zeta\":1,\"alpha\":\"two\"}");
}

TEST(Json, RequireFieldMessages) {
  ctm::Json obj = ctm::parse_json("{\"q\": 3}", "x.json");
  EXPECT_NE(error_of([&] {
              ctm::require_string(obj, "q", "x.json:4");
            }).find("x.json:4: field \"q\" must be a string"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ctm::require_field(obj, "answer", "x.json:4"); }).find("missing field \"answer\""),
            std::string::npos);
}
