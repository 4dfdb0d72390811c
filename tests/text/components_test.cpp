// Each tokenizer.json component on small hand-written files: Split behaviors (+ invert), Digits, ByteLevel's
// prefix space, normalizers, added-token rules, post-processors, decoders, byte fallback and unknown tokens,
// and clear errors for what is not supported.
#include <gtest/gtest.h>

#include "ctm/core/error.hpp"
#include "ctm/text/tokenizer.hpp"
#include "naive_bpe.hpp"

namespace ctm::text {
namespace {

using testing_fixtures::byte_level_chars;

// A char-level BPE whose vocabulary is `tokens` (ids in order) plus every character of `alphabet`, with
// ignore_merges so that a pre-token that is a whole vocabulary entry comes out as one id: the pieces the
// pre-tokenizer made are then visible as tokens.
Json piece_tokenizer(const std::vector<std::string>& tokens, const std::string& alphabet, Json pre_tokenizer,
                     Json normalizer = nullptr) {
  Json vocab = Json::object();
  int id = 0;
  for (const auto& t : tokens)
    if (!vocab.contains(t)) vocab[t] = id++;
  for (size_t i = 0; i < alphabet.size();) {
    const auto b = static_cast<unsigned char>(alphabet[i]);
    const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    const std::string ch = alphabet.substr(i, n);
    if (!vocab.contains(ch)) vocab[ch] = id++;
    i += n;
  }
  return Json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", Json::array()},
              {"normalizer", normalizer},
              {"pre_tokenizer", pre_tokenizer},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", true},
                {"vocab", vocab},
                {"merges", Json::array()}}}};
}

std::vector<std::string> pieces(const Tokenizer& tok, const std::string& text, bool special = false) {
  std::vector<std::string> out;
  for (int32_t id : tok.encode(text, special)) out.push_back(*tok.id_to_token(id));
  return out;
}

Json split(const std::string& pattern, const char* behavior, bool invert, const char* kind = "String") {
  return Json{{"type", "Split"}, {"pattern", {{kind, pattern}}}, {"behavior", behavior}, {"invert", invert}};
}

using V = std::vector<std::string>;

TEST(Components, SplitBehaviors) {
  // The example of the Hugging Face documentation for SplitDelimiterBehavior.
  const std::string text = "the-final--countdown";
  const V words = {"the", "final", "countdown", "-", "--", "the-", "final-", "-final", "-countdown"};
  auto run = [&](const char* behavior, bool invert) {
    return pieces(Tokenizer::from_json(piece_tokenizer(words, text, split("-", behavior, invert))), text);
  };
  EXPECT_EQ(run("Removed", false), (V{"the", "final", "countdown"}));
  EXPECT_EQ(run("Isolated", false), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run("MergedWithPrevious", false), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(run("MergedWithNext", false), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(run("Contiguous", false), (V{"the", "-", "final", "--", "countdown"}));
  // invert: the words are the matches.
  EXPECT_EQ(run("Removed", true), (V{"-", "-", "-"}));
  EXPECT_EQ(run("Isolated", true), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run("MergedWithPrevious", true), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(run("MergedWithNext", true), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(run("Contiguous", true), (V{"the", "-", "final", "--", "countdown"}));
}

TEST(Components, SplitRegexUsesOnigurumaWhiteSpace) {
  // U+0085 (NEL) is white space for Oniguruma's \s; U+180E is not (PCRE2's \s would take it).
  const std::string nel = "\xc2\x85", mvs = "\xe1\xa0\x8e";
  const Tokenizer tok = Tokenizer::from_json(piece_tokenizer({"a", "b", "a" + mvs + "b"}, "ab" + nel + mvs,
                                                             split("\\s+", "Removed", false, "Regex")));
  EXPECT_EQ(pieces(tok, "a" + nel + "b"), (V{"a", "b"}));
  EXPECT_EQ(pieces(tok, "a" + mvs + "b"), (V{"a" + mvs + "b"}));
  // \h is a hexadecimal digit in Oniguruma.
  const Tokenizer hex = Tokenizer::from_json(
      piece_tokenizer({"x", "3f", "g"}, "x3fg", split("\\h+", "Isolated", false, "Regex")));
  EXPECT_EQ(pieces(hex, "x3fg"), (V{"x", "3f", "g"}));
}

TEST(Components, Digits) {
  const std::string text = "abc123def4";
  const V words = {"abc", "123", "def", "1", "2", "3", "4"};
  auto run = [&](bool individual) {
    const Json pre = {{"type", "Digits"}, {"individual_digits", individual}};
    return pieces(Tokenizer::from_json(piece_tokenizer(words, text, pre)), text);
  };
  EXPECT_EQ(run(true), (V{"abc", "1", "2", "3", "def", "4"}));
  EXPECT_EQ(run(false), (V{"abc", "123", "def", "4"}));
}

TEST(Components, Normalizers) {
  const Json none = nullptr;
  const std::string e_acute = "\xc3\xa9", e_combining = "e\xcc\x81";
  auto nfc = Tokenizer::from_json(piece_tokenizer({e_acute}, "e", none, Json{{"type", "NFC"}}));
  EXPECT_EQ(pieces(nfc, e_combining), (V{e_acute}));
  auto nfkc = Tokenizer::from_json(piece_tokenizer({"fi"}, "fi", none, Json{{"type", "NFKC"}}));
  EXPECT_EQ(pieces(nfkc, "\xef\xac\x81"), (V{"fi"}));  // the ligature U+FB01
  const Json seq = {{"type", "Sequence"},
                    {"normalizers",
                     {{{"type", "Prepend"}, {"prepend", "_"}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}},
                      {{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}}}};
  auto s = Tokenizer::from_json(piece_tokenizer({"_hi_there"}, "_hiter", none, seq));
  EXPECT_EQ(pieces(s, "hi there"), (V{"_hi_there"}));
  EXPECT_TRUE(pieces(s, "").empty());  // Prepend leaves empty text empty
}

Json byte_level_tokenizer(Json added, Json post = nullptr, bool add_prefix_space = false) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_chars(std::string(1, static_cast<char>(b)))] = b;
  vocab["Ġhello"] = 256;
  vocab["hello"] = 257;
  return Json{
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", true}}},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}, {"ignore_merges", true}}}};
}

Json added_token(int id, const std::string& content, bool lstrip, bool rstrip, bool single_word,
                 bool special = true) {
  return Json{{"id", id},         {"content", content},  {"single_word", single_word}, {"lstrip", lstrip},
              {"rstrip", rstrip}, {"normalized", false}, {"special", special}};
}

TEST(Components, ByteLevelPrefixSpace) {
  auto with = Tokenizer::from_json(byte_level_tokenizer(Json::array(), nullptr, true));
  auto without = Tokenizer::from_json(byte_level_tokenizer(Json::array(), nullptr, false));
  EXPECT_EQ(with.encode("hello", false), std::vector<int32_t>{256});
  EXPECT_EQ(without.encode("hello", false), std::vector<int32_t>{257});
  EXPECT_EQ(with.encode(" hello", false), std::vector<int32_t>{256});  // no second space
  EXPECT_EQ(with.decode({256}), " hello");
}

TEST(Components, AddedTokenRules) {
  const Json added = {
      added_token(300, "<m>", true, false, false), added_token(301, "<r>", false, true, false),
      added_token(302, "ab", false, false, true, false), added_token(303, "<x>", false, false, false),
      added_token(304, "<x><y>", false, false, false)};
  const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer(added));
  const int32_t sp = 32, a = 97, b = 98;                                       // byte ids
  EXPECT_EQ(tok.encode("a <m>b", false), (std::vector<int32_t>{a, 300, b}));   // lstrip eats the space
  EXPECT_EQ(tok.encode("a<r>  b", false), (std::vector<int32_t>{a, 301, b}));  // rstrip eats both
  EXPECT_EQ(tok.encode("ab a", false), (std::vector<int32_t>{302, sp, a}));    // a single word
  EXPECT_EQ(tok.encode("xab", false), (std::vector<int32_t>{120, a, b}));      // inside a word: not matched
  EXPECT_EQ(tok.encode("<x><y>", false), (std::vector<int32_t>{304}));         // leftmost-longest
  EXPECT_EQ(tok.encode("<x><z>", false).front(), 303);
  EXPECT_EQ(tok.decode({a, 300, b}), "a<m>b");
}

TEST(Components, NormalizedAddedTokens) {
  // A normalized added token is matched after normalization; a raw one before.
  Json j = piece_tokenizer({"x"}, "xyz_", nullptr,
                           Json{{"type", "Replace"}, {"pattern", {{"String", "y"}}}, {"content", "z"}});
  j["added_tokens"] =
      Json::array({Json{{"id", 10}, {"content", "zz"}, {"normalized", true}, {"special", false}},
                   Json{{"id", 11}, {"content", "_y"}, {"normalized", false}, {"special", true}}});
  const Tokenizer tok = Tokenizer::from_json(j);
  EXPECT_EQ(tok.encode("xyy", false), (std::vector<int32_t>{0, 10}));  // "yy" -> "zz"
  EXPECT_EQ(tok.encode("_y", false), (std::vector<int32_t>{11}));      // matched on the raw text
}

TEST(Components, PostProcessors) {
  const Json template_post = {{"type", "TemplateProcessing"},
                              {"single",
                               {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                              {"pair", Json::array()},
                              {"special_tokens",
                               {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}},
                                {"</s>", {{"id", "</s>"}, {"ids", {301}}, {"tokens", {"</s>"}}}}}}};
  const Json added = {added_token(300, "<s>", false, false, false),
                      added_token(301, "</s>", false, false, false)};
  const Json seq = {{"type", "Sequence"}, {"processors", {{{"type", "ByteLevel"}}, template_post}}};
  for (const Json& post : {template_post, seq}) {
    const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer(added, post));
    EXPECT_EQ(tok.encode("a", true), (std::vector<int32_t>{300, 97, 301}));
    EXPECT_EQ(tok.encode("a", false), (std::vector<int32_t>{97}));
  }
  // tokenizer_config.json's add_bos_token / add_eos_token replace the post-processor's tokens.
  const Json config = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
                       {"eos_token", "</s>"},
                       {"add_bos_token", false},
                       {"add_eos_token", true}};
  const Tokenizer tok = Tokenizer::from_json(byte_level_tokenizer(added, template_post), &config);
  EXPECT_EQ(tok.encode("a", true), (std::vector<int32_t>{97, 301}));
  EXPECT_EQ(tok.bos_id(), 300);
  EXPECT_EQ(tok.eos_id(), 301);
}

// A Llama-2 style tokenizer: Metaspace-like text, byte fallback, unknown token, and its decoder chain.
Json sentencepiece_like(bool byte_fallback, bool fuse_unk) {
  Json vocab = {{"<unk>", 0}, {"▁Hello", 1}, {"▁world", 2}, {"▁", 3},
                {"H", 4},     {"e", 5},      {"▁H", 6},     {"ee", 7}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 10 + b;
  }
  return Json{{"normalizer",
               {{"type", "Sequence"},
                {"normalizers",
                 {{{"type", "Prepend"}, {"prepend", "▁"}},
                  {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
              {"pre_tokenizer", nullptr},
              {"decoder",
               {{"type", "Sequence"},
                {"decoders",
                 {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                  {{"type", "ByteFallback"}},
                  {{"type", "Fuse"}},
                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
              {"model",
               {{"type", "BPE"},
                {"unk_token", "<unk>"},
                {"fuse_unk", fuse_unk},
                {"byte_fallback", byte_fallback},
                {"vocab", vocab},
                {"merges", Json::array({"▁ H", "e e"})}}}};
}

TEST(Components, ByteFallbackUnknownAndDecoderChain) {
  const Tokenizer bf = Tokenizer::from_json(sentencepiece_like(true, false));
  // "你" is not in the vocabulary: its three bytes.
  EXPECT_EQ(bf.encode("你", false), (std::vector<int32_t>{3, 10 + 0xE4, 10 + 0xBD, 10 + 0xA0}));
  EXPECT_EQ(bf.decode({1, 10 + 0xE4, 10 + 0xBD, 10 + 0xA0, 2}), "Hello你 world");
  IncrementalDecoder dec(bf);
  std::string joined;
  for (int32_t id : {1, 10 + 0xE4, 10 + 0xBD, 10 + 0xA0, 2}) joined += dec.push(id);
  joined += dec.flush();
  EXPECT_EQ(joined, "Hello你 world");
  EXPECT_EQ(bf.token_bytes(1), std::nullopt);  // Fuse/Strip need the whole sequence

  const Tokenizer unk = Tokenizer::from_json(sentencepiece_like(false, false));
  EXPECT_EQ(unk.encode("xy", false), (std::vector<int32_t>{3, 0, 0}));
  const Tokenizer fused = Tokenizer::from_json(sentencepiece_like(false, true));
  EXPECT_EQ(fused.encode("xy", false), (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(fused.encode("Heee", false), (std::vector<int32_t>{6, 7, 5}));  // merges on characters
}

// The Strip decoder on bytes that are not UTF-8 (ByteFallback keeps them as they are, and an incremental
// decode stops inside a character): each such byte is one character that is never stripped. Strip used to
// read a lead byte's missing continuation bytes past the end of the token (found by the tokenizer fuzz
// target; an ASan heap overflow on long tokens, a wrong result on short ones).
TEST(Components, StripDecoderOnIncompleteCharacters) {
  Json j = sentencepiece_like(true, false);
  j["decoder"]["decoders"][3]["stop"] = 1;  // strip one leading and one trailing space
  const Tokenizer tok = Tokenizer::from_json(j);
  const int32_t e4 = 10 + 0xE4, space = 3;
  EXPECT_EQ(tok.decode({e4, space}), "\xE4");
  EXPECT_EQ(tok.decode({space, e4, 10 + 0xBD, space}), "\xE4\xBD");
  // Valid characters keep Hugging Face's quirk: the kept length is counted in bytes, so after a multi-byte
  // character the trailing space stays.
  EXPECT_EQ(tok.decode({space, 10 + 0xE4, 10 + 0xBD, 10 + 0xA0, space}), "你 ");
  std::vector<int32_t> ids = {1};
  ids.insert(ids.end(), 40, e4);  // a token longer than std::string's inline buffer: on the heap
  EXPECT_EQ(tok.decode(ids), "Hello" + std::string(40, '\xE4'));
  IncrementalDecoder dec(tok);
  std::string joined;
  for (int32_t id : ids) joined += dec.push(id);
  EXPECT_EQ(joined + dec.flush(), tok.decode(ids));
}

// A ByteLevel decoder after ByteFallback sees raw bytes, not byte characters: a byte that is not a byte
// character is kept as it is. Mapping used to trust a lead byte and read the byte after the end of the token
// (for <0xC4>, the string's terminating NUL made U+0100, the character of byte 0x00). And since ByteFallback
// joins consecutive byte tokens, ByteLevel reads characters across tokens (<0xC4><0x80> is U+0100 as Hugging
// Face decodes it): such a chain is not decoded token by token.
TEST(Components, ByteLevelDecoderOnRawBytes) {
  Json j = sentencepiece_like(true, false);
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "ByteLevel"}}}}};
  const Tokenizer tok = Tokenizer::from_json(j);
  EXPECT_EQ(tok.decode({10 + 0xC4}), "\xC4");
  EXPECT_EQ(tok.decode({10 + 0xC4, 10 + 0x80}), std::string(1, '\0'));  // U+0100: the character of byte 0
  EXPECT_EQ(tok.decode({10 + 0x41, 10 + 0xC4}), "A\xC4");
  EXPECT_EQ(tok.token_bytes(10 + 0xC5), std::nullopt);
  IncrementalDecoder dec(tok);
  std::string pieces;
  for (int32_t id : {10 + 0x41, 10 + 0xC4, 10 + 0x80}) pieces += dec.push(id);
  EXPECT_EQ(pieces + dec.flush(), std::string("A") + '\0');
}

// A Replace decoder after ByteFallback matches on raw bytes: a byte that is not part of a valid character is
// matched by nothing. PCRE2 read such bytes as undefined behaviour: "." took 0xE4 for a 3-byte character
// and reported a match ending past the token (std::out_of_range escaped decode). Replace sees consecutive
// byte tokens joined, as in Hugging Face (<0xC3><0xA9> is one "é"), so the chain is not decoded per token.
TEST(Components, ReplaceDecoderOnRawBytes) {
  Json j = sentencepiece_like(true, false);
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "ByteFallback"}}, {{"type", "Replace"}, {"pattern", {{"Regex", "."}}}, {"content", "x"}}}}};
  const Tokenizer tok = Tokenizer::from_json(j);
  const int32_t e4 = 10 + 0xE4;
  EXPECT_EQ(tok.decode({e4}), "\xE4");
  EXPECT_EQ(tok.decode({e4, 10 + 'A'}), "\xE4x");
  EXPECT_EQ(tok.decode({10 + 0xC3, 10 + 0xA9}), "x");
  EXPECT_EQ(tok.decode({1}), "xxxxxx");                          // "▁Hello": six characters
  j["decoder"]["decoders"][1]["pattern"] = {{"Regex", "(?:)"}};  // empty matches step over raw bytes
  EXPECT_EQ(Tokenizer::from_json(j).decode({e4, 10 + 'A'}), "x\xE4xAx");
}

void expect_error(const Json& j, const std::string& needle) {
  try {
    Tokenizer::from_json(j);
    ADD_FAILURE() << "no error; expected one naming " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Components, UnsupportedFieldsAreErrorsNamingTheField) {
  Json base = byte_level_tokenizer(Json::array());
  Json j = base;
  j["model"]["type"] = "WordPiece";
  expect_error(j, "WordPiece");
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(j, "Metaspace");
  j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(j, "Lowercase");
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error(j, "WordPiece");
  j = base;
  j["truncation"] = {{"max_length", 5}};
  expect_error(j, "truncation");
  j = base;
  j["surprise"] = 1;
  expect_error(j, "surprise");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_error(j, "dropout");
  j = base;
  j["pre_tokenizer"] = split("[a-z&&[^aeiou]]", "Isolated", false, "Regex");
  expect_error(j, "not supported");
  j = base;
  j["model"]["merges"] = Json::array({"Ġ nowhere"});
  expect_error(j, "merges[0]");
  j = base;
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}, {"invert", false}};
  expect_error(j, "Sideways");
}

// Values of the wrong type or out of range are errors naming the field, never a library exception
// (nlohmann's type_error), a silently truncated id or an allocation the size of the id: a vocabulary id of
// 2^23 made every table of the tokenizer that long. Found by reading the loader for the tokenizer fuzz
// target.
TEST(Components, HostileValuesAreErrorsNamingTheField) {
  const Json base = byte_level_tokenizer(Json::array());
  const Json template_post = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}}}}}};
  Json j = base;
  j["model"]["vocab"]["far"] = int64_t{1} << 23;
  expect_error(j, "the id of token \"far\" must be a token id");
  j = base;
  j["added_tokens"] = {added_token(0, "<x>", false, false, false)};
  j["added_tokens"][0]["id"] = 4294967553LL;  // 2^32 + 257: was truncated to 257
  expect_error(j, "added_tokens[0]: field \"id\" must be a token id");
  for (const Json& bad : {Json("x"), Json(1e300), Json(4294967553LL), Json(-1)}) {
    j = base;
    j["post_processor"] = template_post;
    j["post_processor"]["special_tokens"]["<s>"]["ids"] = {bad};
    expect_error(j, "special_tokens.<s>.ids must be a token id");
    j = base;
    j["post_processor"] = {{"type", "BertProcessing"}, {"cls", {"<s>", bad}}, {"sep", {"</s>", 257}}};
    expect_error(j, "cls[1] must be a token id");
  }
  j = base;
  j["model"]["unk_token"] = 5;
  expect_error(j, "\"unk_token\" must be a string");
  j = base;
  j["decoder"] = {{"type", "Strip"}, {"content", " "}, {"start", "one"}, {"stop", 0}};
  expect_error(j, "\"start\" must be a non-negative integer");
  j["decoder"]["start"] = -1;
  expect_error(j, "\"start\" must be a non-negative integer");
  const Json config = {{"tokenizer_class", 7}};
  try {
    Tokenizer::from_json(base, &config);
    ADD_FAILURE() << "a numeric tokenizer_class was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"tokenizer_class\" must be a string"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ctm::text
