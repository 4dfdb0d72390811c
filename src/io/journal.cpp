#include "ctm/io/journal.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace ctm {
namespace {

constexpr int kJournalFormat = 1;

std::string dump_compact(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

JournalContents read_journal(const std::string& path) {
  JournalContents out;
  const std::string text = read_file(path);
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    ++line_no;
    const std::string where = str(path, ":", line_no);
    if (end == std::string::npos) {  // the line being written when the run was killed
      out.problems.push_back(str(where, ": incomplete last line (the run was interrupted while writing it)"));
      break;
    }
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    Json j;
    try {
      j = parse_json(line, where);
    } catch (const Error& e) {
      out.problems.push_back(e.what());
      continue;
    }
    if (line_no == 1) {
      if (j.is_object() && j.value("ctm_journal", 0) == kJournalFormat && j.contains("settings")) {
        out.has_header = true;
        out.settings = std::move(j["settings"]);
      } else {
        out.problems.push_back(str(where, ": not a ctm journal header"));
      }
      continue;
    }
    if (!j.is_object() || !j.contains("item") || !j["item"].is_number_integer() || !j.contains("data")) {
      out.problems.push_back(str(where, ": not a journal record ({\"item\": i, \"data\": ...})"));
      continue;
    }
    out.records.push_back({j["item"].get<int64_t>(), std::move(j["data"])});
  }
  return out;
}

JournalWriter::JournalWriter(std::string path, const Json& settings) : path_(std::move(path)) {
  make_dirs(std::filesystem::path(check_output_file(path_)).parent_path().string());
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw Error(str("cannot write '", path_, "': ", std::strerror(errno)));
  write_line(dump_compact(Json{{"ctm_journal", kJournalFormat}, {"settings", settings}}));
}

JournalWriter::~JournalWriter() {
  if (file_) std::fclose(file_);
}

void JournalWriter::append(int64_t item, const Json& data) {
  Json line = Json::object();
  line["item"] = item;
  line["data"] = data;
  write_line(dump_compact(line));
}

void JournalWriter::write_line(const std::string& line) {
  const bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
                  std::fputc('\n', file_) != EOF && std::fflush(file_) == 0;
  if (!ok) throw Error(str("cannot write '", path_, "': ", std::strerror(errno), " (disk full?)"));
}

std::string settings_differences(const Json& mine, const Json& theirs) {
  std::string out;
  auto value_of = [](const Json& obj, const std::string& key) {
    return obj.is_object() && obj.contains(key) ? dump_compact(obj.at(key)) : std::string("(absent)");
  };
  Json keys = Json::object();
  for (const Json* obj : {&mine, &theirs})
    if (obj->is_object())
      for (const auto& kv : obj->items()) keys[kv.key()] = true;
  for (const auto& kv : keys.items()) {
    const std::string a = value_of(mine, kv.key()), b = value_of(theirs, kv.key());
    if (a != b) out += str("\n  ", kv.key(), ": ", b, " there, ", a, " in this run");
  }
  return out;
}

}  // namespace ctm
