// The HDF5 layer: round trips of every type, chunk boundaries, hyperslabs, empty datasets, UTF-8 strings,
// attributes, the filters' effect on size, errors that name the file and the object, atomic writes.
#include "ctm/io/hdf5.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "ctm/core/error.hpp"
#include "h5_test_util.hpp"

namespace {

namespace fs = std::filesystem;
namespace h5 = ctm::io::h5;
using ctm::test::error_of;
using ctm::test::ScratchDir;

template <class T>
std::vector<T> extremes() {
  using L = std::numeric_limits<T>;
  if constexpr (std::is_integral_v<T>) {
    return {L::min(), L::max(), 0, -1, 1, static_cast<T>(L::max() / 3)};
  } else {
    return {L::lowest(), L::max(), L::min(), L::denorm_min(), T(0), -T(0), T(-1.5), L::infinity(), T(0.1)};
  }
}

template <class T>
void expect_round_trip(const std::string& path, h5::Type type) {
  const std::vector<T> want = extremes<T>();
  {
    h5::File f = h5::File::create(path);
    f.write("values", want);
    f.write("nested/empty", std::vector<T>{});
    f.close();
  }
  const h5::File f = h5::File::open(path);
  const h5::Dataset d = f.dataset("values");
  EXPECT_EQ(d.type(), type) << h5::type_name(d.type());
  EXPECT_EQ(d.size(), static_cast<int64_t>(want.size()));
  const std::vector<T> got = d.read<T>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << h5::type_name(type) << " value " << i;
    if constexpr (std::is_floating_point_v<T>) {
      EXPECT_EQ(std::signbit(got[i]), std::signbit(want[i])) << i;
    }
  }
  EXPECT_EQ(f.dataset("nested/empty").type(), type);
  EXPECT_TRUE(f.read<T>("nested/empty").empty());
}

TEST(Hdf5, RoundTripOfEveryNumericTypeAndEmptyDatasets) {
  ScratchDir tmp("h5_types");
  expect_round_trip<int8_t>(tmp.path("i8.h5"), h5::Type::I8);
  expect_round_trip<int16_t>(tmp.path("i16.h5"), h5::Type::I16);
  expect_round_trip<int32_t>(tmp.path("i32.h5"), h5::Type::I32);
  expect_round_trip<int64_t>(tmp.path("i64.h5"), h5::Type::I64);
  expect_round_trip<float>(tmp.path("f32.h5"), h5::Type::F32);
  expect_round_trip<double>(tmp.path("f64.h5"), h5::Type::F64);
}

TEST(Hdf5, NaNSurvives) {
  ScratchDir tmp("h5_nan");
  {
    h5::File f = h5::File::create(tmp.path("nan.h5"));
    f.write("x", std::vector<double>{std::nan(""), 1.0});
    f.close();
  }
  const auto got = h5::File::open(tmp.path("nan.h5")).read<double>("x");
  EXPECT_TRUE(std::isnan(got[0]));
  EXPECT_EQ(got[1], 1.0);
}

TEST(Hdf5, ManyChunksHyperslabsAndPartialReads) {
  ScratchDir tmp("h5_chunks");
  const int64_t n = 200'003;  // four chunks of 65536, the last one partial
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(i * 7919 % 100'000 - 50'000);
  {
    h5::File f = h5::File::create(tmp.path("c.h5"));
    h5::Dataset d = f.create_dataset<int32_t>("g/v", n);
    d.write(v.data() + 70'000, 70'000, n - 70'000);  // out of order, across chunk boundaries
    d.write(v.data(), 0, 70'000);
    d.write(v.data(), 5, 0);  // nothing
    EXPECT_NE(error_of([&] { d.write(v.data(), n - 1, 2); }).find("outside its 200003 values"),
              std::string::npos);
    f.close();
  }
  const h5::File f = h5::File::open(tmp.path("c.h5"));
  EXPECT_EQ(f.read<int32_t>("g/v"), v);
  const h5::Dataset d = f.dataset("g/v");
  EXPECT_EQ(d.read<int32_t>(65'530, 20), std::vector<int32_t>(v.begin() + 65'530, v.begin() + 65'550));
  EXPECT_TRUE(d.read<int32_t>(n, 0).empty());
  EXPECT_NE(error_of([&] { d.read<int32_t>(n - 5, 6); }).find("reading [199998, 200004)"), std::string::npos);
}

TEST(Hdf5, ShuffleAndDeflateShrinkRepetitiveData) {
  ScratchDir tmp("h5_deflate");
  std::vector<int32_t> v(1'000'000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>(i % 1000);  // small values: shuffle helps
  for (int level : {0, 4}) {
    const std::string path = tmp.path("d" + std::to_string(level) + ".h5");
    h5::File f = h5::File::create(path);
    f.write("v", v, h5::Storage{65536, level});
    f.close();
    const auto bytes = fs::file_size(path);
    if (level == 0) {
      EXPECT_GT(bytes, 4'000'000u);  // 4 MB of raw int32
    } else {
      EXPECT_LT(bytes, 400'000u) << "deflate level 4 did not compress";
    }
    EXPECT_EQ(h5::File::open(path).read<int32_t>("v"), v);
  }
}

TEST(Hdf5, Utf8StringsRoundTrip) {
  ScratchDir tmp("h5_strings");
  const std::vector<std::string> want = {"", "ascii", "Grüße, ∑ x², 数学, 😀", std::string(100'000, 'x'),
                                         "{\"json\": [1, 2]}"};
  {
    h5::File f = h5::File::create(tmp.path("s.h5"));
    f.write_strings("s", want);
    f.write_strings("empty", {});
    f.close();
  }
  const h5::File f = h5::File::open(tmp.path("s.h5"));
  EXPECT_EQ(f.dataset("s").type(), h5::Type::String);
  EXPECT_EQ(f.read_strings("s"), want);
  EXPECT_TRUE(f.read_strings("empty").empty());
}

TEST(Hdf5, StringsThatHdf5CannotHoldAreRejectedByIndex) {
  ScratchDir tmp("h5_bad_strings");
  h5::File f = h5::File::create(tmp.path("s.h5"));
  const std::string nul = error_of([&] { f.write_strings("a", {"ok", std::string("a\0b", 3)}); });
  EXPECT_NE(nul.find("dataset '/a' [1]: NUL byte at offset 1"), std::string::npos) << nul;
  const std::string bad = error_of([&] { f.write_strings("b", {"\xC3\x28"}); });
  EXPECT_NE(bad.find("dataset '/b' [0]: invalid UTF-8 at byte offset 0"), std::string::npos) << bad;
  for (const char* s :
       {"\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "\xE2\x82"})  // surrogate, overlong, >10FFFF, cut
    EXPECT_THROW(h5::check_text(s, "x"), ctm::Error) << s;
  EXPECT_NO_THROW(h5::check_text("\xF0\x9F\x98\x80 \xE2\x82\xAC \x7F", "x"));
}

TEST(Hdf5, AttributesOnTheFileAndOnGroups) {
  ScratchDir tmp("h5_attrs");
  const std::string json = R"({"model": "tiny", "β": 0.1, "list": [1, 2, 3]})";
  {
    h5::File f = h5::File::create(tmp.path("a.h5"));
    f.set_string_attr("settings", json);
    f.set_string_attr("empty", "");
    f.set_int_attr("big", std::numeric_limits<int64_t>::min());
    f.set_double_attr("beta", 0.1);
    f.set_int_attr("replaced", 1);
    f.set_string_attr("replaced", "now a string");
    h5::Group g = f.create_group("chosen/inner");
    g.set_int_attr("n", 7);
    g.set_double_attr("x", -0.0);
    f.close();
  }
  const h5::File f = h5::File::open(tmp.path("a.h5"));
  EXPECT_EQ(f.string_attr("settings"), json);
  EXPECT_EQ(f.string_attr("empty"), "");
  EXPECT_EQ(f.int_attr("big"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.double_attr("beta"), 0.1);
  EXPECT_EQ(f.string_attr("replaced"), "now a string");
  EXPECT_FALSE(f.has_attr("missing"));
  const h5::Group g = f.open_group("chosen/inner");
  EXPECT_EQ(g.path(), "/chosen/inner");
  EXPECT_EQ(g.int_attr("n"), 7);
  EXPECT_TRUE(std::signbit(g.double_attr("x")));
  EXPECT_EQ(g.double_attr("n"), 7.0);  // an integer reads as a number

  const std::string missing = error_of([&] { f.int_attr("missing"); });
  EXPECT_NE(missing.find("'" + tmp.path("a.h5") + "' attribute '/missing': missing"), std::string::npos)
      << missing;
  const std::string wrong = error_of([&] { g.string_attr("n"); });
  EXPECT_NE(wrong.find("attribute '/chosen/inner/n': not a string"), std::string::npos) << wrong;
  EXPECT_NE(error_of([&] { f.int_attr("beta"); }).find("not an integer"), std::string::npos);
}

TEST(Hdf5, GroupsAndLinks) {
  ScratchDir tmp("h5_groups");
  h5::File f = h5::File::create(tmp.path("g.h5"));
  f.write("a/b/c", std::vector<int8_t>{1});
  EXPECT_TRUE(f.exists("a"));
  EXPECT_TRUE(f.exists("a/b/c"));
  EXPECT_TRUE(f.exists("/a/b"));
  EXPECT_FALSE(f.exists("a/x/c"));  // a missing parent answers false, not an error
  EXPECT_FALSE(f.exists("z"));
  EXPECT_EQ(f.open_group("a").read<int8_t>("b/c"), std::vector<int8_t>{1});
  EXPECT_NE(error_of([&] { f.open_group("q"); }).find("group '/q': missing"), std::string::npos);
}

TEST(Hdf5, ErrorsNameTheFileAndTheDataset) {
  ScratchDir tmp("h5_errors");
  const std::string path = tmp.path("e.h5");
  {
    h5::File f = h5::File::create(path);
    f.write("chosen/ce_prob", std::vector<float>{0.5f});
    f.write("ints", std::vector<int32_t>{1, 2});
    f.close();
  }
  const h5::File f = h5::File::open(path);
  const std::string missing = error_of([&] { f.read<float>("chosen/logp_pos"); });
  EXPECT_EQ(missing, "'" + path + "' dataset '/chosen/logp_pos': missing");
  const std::string wrong = error_of([&] { f.read<int32_t>("chosen/ce_prob"); });
  EXPECT_EQ(wrong, "'" + path + "' dataset '/chosen/ce_prob' is float32, expected int32");
  EXPECT_NE(error_of([&] { f.read_strings("ints"); }).find("is int32, expected string"), std::string::npos);

  const std::string none = error_of([&] { h5::File::open(tmp.path("absent.h5")); });
  EXPECT_EQ(none, "'" + tmp.path("absent.h5") + "': no such file");

  const std::string text = tmp.path("text.h5");
  std::ofstream(text) << "this is not HDF5\n";
  EXPECT_EQ(error_of([&] { h5::File::open(text); }), "'" + text + "': not an HDF5 file");
}

TEST(Hdf5, CorruptFileFailsWithHdf5sReason) {
  ScratchDir tmp("h5_corrupt");
  const std::string path = tmp.path("c.h5");
  {
    h5::File f = h5::File::create(path);
    std::vector<int64_t> v(100'000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i * i);
    f.write("v", v, h5::Storage{65536, 0});
    f.close();
  }
  fs::resize_file(path, fs::file_size(path) / 2);  // a write cut short
  const std::string e = error_of([&] {
    const h5::File f = h5::File::open(path);
    f.read<int64_t>("v");
  });
  EXPECT_NE(e.find("'" + path + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("H5Fopen"), std::string::npos) << e;    // names the call,
  EXPECT_NE(e.find("hdf5.cpp:"), std::string::npos) << e;  // where it was made
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;  // and HDF5's reason
}

TEST(Hdf5, CreateInAMissingFolderNamesTheCall) {
  const std::string e = error_of([] { h5::File::create("/nonexistent_ctm_dir/x.h5"); });
  EXPECT_NE(e.find("'/nonexistent_ctm_dir/x.h5': H5Fcreate("), std::string::npos) << e;
  EXPECT_NE(e.find("unable to"), std::string::npos) << e;
}

TEST(Hdf5, AtomicWriteLeavesNothingUnderTheFinalNameWhenItThrows) {
  ScratchDir tmp("h5_atomic");
  const std::string path = tmp.path("sub/out.h5");
  try {
    h5::AtomicWrite w(path);
    EXPECT_TRUE(fs::exists(w.tmp_path()));
    w.file().write("x", std::vector<int32_t>{1, 2, 3});
    w.file().write_strings("bad", {std::string("\0", 1)});  // throws
    w.commit();
    FAIL() << "no exception";
  } catch (const ctm::Error&) {
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.dir / "sub"), {}), 0) << "temporary file left behind";

  {
    h5::AtomicWrite w(path);
    w.file().write("x", std::vector<int32_t>{1, 2, 3});
    EXPECT_FALSE(fs::exists(path));  // nothing under the final name until commit
    w.commit();
  }
  EXPECT_EQ(h5::File::open(path).read<int32_t>("x"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.dir / "sub"), {}), 1);

  // A failed rewrite keeps the previous complete file.
  EXPECT_THROW(
      {
        h5::AtomicWrite w(path);
        w.file().write("x", std::vector<int32_t>{9});
        throw ctm::Error("interrupted");
      },
      ctm::Error);
  EXPECT_EQ(h5::File::open(path).read<int32_t>("x"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.dir / "sub"), {}), 1);
}

}  // namespace
