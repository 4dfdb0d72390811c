// safetensors: round trips, and hostile files (truncated, corrupted, oversized headers, overlapping or
// out-of-range offsets, wrong byte lengths) that must give a ctm::Error naming the file and the tensor. This
// test runs under AddressSanitizer/UBSan in CI, so an out-of-bounds read would fail it even if no error were
// expected.
#include "ctm/io/safetensors.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"

namespace ctm::io {
namespace {

std::string temp_dir() {
  const auto info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(::testing::TempDir()) / "ctm_safetensors_test" /
             (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The raw bytes of a file: 8-byte little-endian header length (or `declared_len`), header, data.
std::string raw_file(const std::string& header, const std::string& data, uint64_t declared_len = UINT64_MAX) {
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string write_raw(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Expects opening `path` to throw ctm::Error whose message contains every fragment.
void expect_error(const std::string& path, std::initializer_list<std::string> fragments) {
  try {
    SafetensorsFile f(path);
    ADD_FAILURE() << path << ": opened without error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    for (const auto& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos) << "missing '" << frag << "' in: " << msg;
  }
}

TEST(Safetensors, WriteReadRoundTrip) {
  const std::string dir = temp_dir();
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  const std::vector<uint16_t> b = {0x3f80, 0xc000, 0x4040};  // bfloat16 1, -2, 3
  const std::vector<int64_t> c = {-1, 0, 1LL << 40};
  const std::vector<uint8_t> d = {};
  std::vector<TensorToWrite> tensors = {
      {"a.weight", DType::F32, {2, 3}, a.data(), {}},
      {"b", DType::BF16, {3}, b.data(), {}},
      {"c",
       DType::I64,
       {3},
       nullptr,
       [&](std::ostream& out) { out.write(reinterpret_cast<const char*>(c.data()), 24); }},
      {"empty", DType::U8, {0, 4}, d.data(), {}},
  };
  const std::string path = dir + "/t.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "x"}});

  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("note"), "x");
  const auto& ia = f.info("a.weight");
  EXPECT_EQ(ia.dtype, DType::F32);
  EXPECT_EQ(ia.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ia.numel(), 6);
  EXPECT_EQ(std::memcmp(f.data(ia), a.data(), 24), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data(ia)) % 8, 0u);  // header padded so the data section is aligned
  EXPECT_EQ(std::memcmp(f.data(f.info("b")), b.data(), 6), 0);
  EXPECT_EQ(std::memcmp(f.data(f.info("c")), c.data(), 24), 0);
  EXPECT_EQ(f.info("empty").nbytes(), 0u);
  f.release(ia);  // dropped pages read back from the file
  EXPECT_EQ(std::memcmp(f.data(ia), a.data(), 24), 0);
  EXPECT_THROW(f.info("nope"), Error);

  SafetensorsSet set(path);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"a.weight", "b", "c", "empty"}));
  EXPECT_EQ(set.total_bytes(), 24u + 6u + 24u);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const std::string dir = temp_dir();
  const float x = 1;
  EXPECT_THROW(write_safetensors(dir + "/d.safetensors",
                                 {{"x", DType::F32, {1}, &x, {}}, {"x", DType::F32, {1}, &x, {}}}),
               Error);
  EXPECT_THROW(
      write_safetensors(dir + "/e.safetensors",
                        {{"x", DType::F32, {2}, nullptr, [](std::ostream& o) { o.write("abcd", 4); }}}),
      Error);
  EXPECT_FALSE(file_exists(dir + "/e.safetensors"));  // nothing left under the final name
}

TEST(Safetensors, TruncatedFiles) {
  const std::string dir = temp_dir();
  const std::vector<float> a(16, 1.0f);
  const std::string good = dir + "/good.safetensors";
  write_safetensors(good, {{"w", DType::F32, {4, 4}, a.data(), {}}});
  const std::string bytes = read_file(good);
  expect_error(write_raw(dir, "empty.safetensors", ""), {"truncated"});
  expect_error(write_raw(dir, "five.safetensors", bytes.substr(0, 5)), {"truncated"});
  expect_error(write_raw(dir, "len_only.safetensors", bytes.substr(0, 8)), {"truncated"});
  expect_error(write_raw(dir, "mid_header.safetensors", bytes.substr(0, 20)), {"truncated"});
  // Header complete, data cut: the tensor runs past the end.
  expect_error(write_raw(dir, "mid_data.safetensors", bytes.substr(0, bytes.size() - 3)),
               {"\"w\"", "past the end"});
}

// A zero dimension makes a tensor empty whatever the other dimensions are; the header accepts dimensions
// whose product before the zero exceeds 2^63 (as the reference implementation does), so numel() must not
// multiply them first. Found by the safetensors fuzz target: the product overflowed int64 (UBSan in the CI
// build).
TEST(Safetensors, EmptyTensorWithHugeDimensions) {
  const std::string dir = temp_dir();
  const std::string path = write_raw(
      dir, "empty.safetensors",
      raw_file(R"({"e": {"dtype": "F32", "shape": [2305843009213693952, 4, 0], "data_offsets": [0, 0]},
                  "z": {"dtype": "U8", "shape": [0, 9223372036854775807, 2], "data_offsets": [0, 0]}})",
               ""));
  SafetensorsFile f(path);
  EXPECT_EQ(f.info("e").numel(), 0);
  EXPECT_EQ(f.info("e").nbytes(), 0u);
  EXPECT_EQ(f.info("e").shape, (std::vector<int64_t>{2305843009213693952, 4, 0}));
  EXPECT_EQ(f.info("z").numel(), 0);
}

TEST(Safetensors, OversizedHeaderLength) {
  const std::string dir = temp_dir();
  expect_error(write_raw(dir, "huge.safetensors", raw_file("{}", "", UINT64_MAX - 1)), {"exceeds the limit"});
  expect_error(write_raw(dir, "big.safetensors", raw_file("{}", "", kMaxHeaderBytes + 1)),
               {"exceeds the limit"});
  expect_error(write_raw(dir, "long.safetensors", raw_file("{}", "", 1000)), {"truncated"});
}

TEST(Safetensors, CorruptHeaders) {
  const std::string dir = temp_dir();
  const std::string data(64, '\x01');
  auto check = [&](const std::string& name, const std::string& header,
                   std::initializer_list<std::string> frags) {
    expect_error(write_raw(dir, name + ".safetensors", raw_file(header, data)), frags);
  };
  check("not_json", "{\"w\": {\"dtype\": \"F32\",", {"invalid JSON"});
  check("not_object", "[1, 2]", {"must be a JSON object"});
  check("entry_not_object", R"({"w": 3})", {"\"w\"", "must be an object"});
  check("no_dtype", R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", {"\"w\"", "dtype"});
  check("bad_dtype", R"({"w": {"dtype": "F8_E4M3X", "shape": [2], "data_offsets": [0, 2]}})",
        {"\"w\"", "unsupported dtype", "F8_E4M3X"});
  check("no_shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", {"\"w\"", "shape"});
  check("negative_dim", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})",
        {"\"w\"", "non-negative"});
  check("float_dim", R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})",
        {"\"w\"", "non-negative"});
  check("bad_offsets", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})",
        {"\"w\"", "data_offsets"});
  check("reversed", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", {"\"w\"", "begin"});
  check("outside", R"({"w": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]}})",
        {"\"w\"", "past the end"});
  check(
      "far_outside",
      R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [18446744073709551608, 18446744073709551615]}})",
      {"\"w\""});
  check("wrong_length", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
        {"\"w\"", "needs 12 bytes", "span 8"});
  check("bf16_length", R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}})",
        {"\"w\"", "needs 8"});
  check("overflow_shape",
        R"({"w": {"dtype": "F64", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}})",
        {"\"w\"", "more than 2^64"});
  check("overflow_bytes",
        R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})", {"\"w\""});
  check("overlap",
        R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
        {"\"a\"", "\"b\"", "overlap"});
  check("metadata_not_string", R"({"__metadata__": {"format": 1}})", {"__metadata__"});
}

// Random corruption of a valid file: every variant either opens (and then every tensor lies inside the file)
// or throws ctm::Error. Under ASan any out-of-bounds read fails the run.
TEST(Safetensors, RandomCorruptionNeverCrashes) {
  const std::string dir = temp_dir();
  const std::vector<float> a(12, 0.5f), b(6, 2.0f);
  const std::string good = dir + "/good.safetensors";
  write_safetensors(good, {{"a", DType::F32, {3, 4}, a.data(), {}}, {"b", DType::F16, {3, 4}, b.data(), {}}});
  const std::string bytes = read_file(good);
  std::mt19937_64 rng(1234);
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string v = bytes;
    const int mode = iter % 3;
    if (mode == 0) {  // flip bytes anywhere in length + header
      const std::size_t header_end = std::min<std::size_t>(v.size(), 8 + 200);
      for (int k = 0; k < 3; ++k) v[rng() % header_end] = static_cast<char>(rng());
    } else if (mode == 1) {  // truncate
      v.resize(rng() % v.size());
    } else {  // change digits in the header (offsets and shapes)
      for (std::size_t i = 8; i < v.size() && i < 200; ++i)
        if (v[i] >= '0' && v[i] <= '9' && rng() % 8 == 0) v[i] = static_cast<char>('0' + rng() % 10);
    }
    const std::string path = write_raw(dir, "v.safetensors", v);
    try {
      SafetensorsFile f(path);
      for (const auto& t : f.tensors()) {
        // Touch every byte the header claims: must be inside the mapping.
        volatile uint8_t sum = 0;
        const uint8_t* p = f.data(t);
        for (uint64_t i = 0; i < t.nbytes(); ++i) sum = static_cast<uint8_t>(sum + p[i]);
        EXPECT_EQ(static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype), t.nbytes());
      }
      ++opened;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(opened, 0);
}

TEST(Safetensors, ShardedFolder) {
  const std::string dir = temp_dir();
  const std::vector<float> a(4, 1.0f), b(2, 2.0f);
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {{"a", DType::F32, {4}, a.data(), {}}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"b", DType::F32, {2}, b.data(), {}}});
  const std::string index_path = dir + "/model.safetensors.index.json";
  write_json_file_atomic(
      index_path,
      Json{{"metadata", {{"total_size", 24}}},
           {"weight_map",
            {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}});
  SafetensorsSet set(dir);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(set.files().size(), 2u);
  EXPECT_EQ(set.info("b").shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(std::memcmp(set.file_of("b").data(set.info("b")), b.data(), 8), 0);
  EXPECT_THROW(set.file_of("c"), Error);

  auto expect_index_error = [&](const Json& index, const std::string& frag) {
    write_json_file_atomic(index_path, index);
    try {
      SafetensorsSet s(dir);
      ADD_FAILURE() << "accepted index " << index.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
    }
  };
  expect_index_error(Json{{"weight_map", {{"a", "model-00002-of-00002.safetensors"}}}}, "does not contain");
  expect_index_error(Json{{"weight_map", {{"a", "../x.safetensors"}}}}, "not a file name inside");
  expect_index_error(Json{{"weight_map", {{"a", "missing.safetensors"}}}}, "missing.safetensors");
  expect_index_error(Json{{"nothing", 1}}, "weight_map");
}

TEST(Safetensors, FolderWithoutWeights) {
  const std::string dir = temp_dir();
  try {
    SafetensorsSet s(dir);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ctm::io
