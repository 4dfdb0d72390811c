// ctm tokenize: token ids of JSONL texts with a Hugging Face tokenizer.json. Each input line {"text": ...}
// gives an output line {"ids": [...]}; only the tokenizer files are read (no model). Rank 0 does the work.
#include <iostream>

#include "ctm/core/error.hpp"
#include "ctm/core/log.hpp"
#include "ctm/core/signal.hpp"
#include "ctm/io/jsonl.hpp"
#include "ctm/tasks/all.hpp"
#include "ctm/tasks/common.hpp"
#include "ctm/tasks/resumable.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::tasks {

void add_tokenize_options(po::options_description& desc) {
  // clang-format off
  desc.add_options()
    ("tokenizer_path", po::value<std::string>(),
     "folder with tokenizer.json (+ tokenizer_config.json), or a tokenizer.json file (default: the model folder)")
    ("input", po::value<std::string>(), "JSONL with \"text\" (string) per line")
    ("output", po::value<std::string>(), "JSONL with \"ids\" (list of token ids) per line")
    ("add_special_tokens", po::bool_switch(), "add the special tokens of the post-processor (e.g. BOS)");
  // clang-format on
}

// --tokenizer_path, else --model_path, else the model folder --model_name resolves to.
std::string tokenizer_path_option(const TaskContext& ctx) {
  if (ctx.vm.count("tokenizer_path")) return ctx.vm["tokenizer_path"].as<std::string>();
  if (!ctx.common.model_path.empty()) return ctx.common.model_path;
  if (!ctx.common.model_name.empty()) return resolve_model_path(ctx.common);
  throw UsageError(str(ctx.common.task_name, " needs --tokenizer_path (or --model_path / --model_name)"));
}

int run_tokenize(const TaskContext& ctx) {
  if (!ctx.vm.count("input")) throw UsageError("tokenize needs --input FILE.jsonl");
  if (!ctx.vm.count("output")) throw UsageError("tokenize needs --output FILE.jsonl");
  if (ctx.comm.rank() != 0) return 0;
  const std::string tokenizer_path = tokenizer_path_option(ctx);
  const std::string input = ctx.vm["input"].as<std::string>();
  const std::string output = ctx.vm["output"].as<std::string>();
  const bool add_special = ctx.vm["add_special_tokens"].as<bool>();
  const text::Tokenizer tok = text::Tokenizer::load(tokenizer_path);

  JsonlReader reader(input);
  JsonlWriter writer(output);
  Json record;
  int64_t lines = 0, tokens = 0;
  std::vector<int32_t> ids;
  while (reader.next(record)) {
    if (ctx.common.max_questions >= 0 && lines >= ctx.common.max_questions) break;
    // Tokenizing is fast (tens of MB/s) and keeps nothing partial: a stop ends it without an output.
    if (stop_requested()) stop_without_saving(str("the tokenization of ", input));
    if (!record.is_object() || !record.contains("text") || !record["text"].is_string()) {
      reader.fail("expected an object with a string field \"text\"");
    }
    ids.clear();
    try {
      tok.encode_into(record["text"].get_ref<const std::string&>(), add_special, ids);
    } catch (const Error& e) {
      reader.fail(e.what());
    }
    writer.write(Json{{"ids", ids}});
    ++lines;
    tokens += static_cast<int64_t>(ids.size());
  }
  writer.commit();
  spdlog::info("tokenized {} lines of {} into {} tokens with {} -> {}", lines, input, tokens, tokenizer_path,
               output);
  return 0;
}

}  // namespace ctm::tasks
