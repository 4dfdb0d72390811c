#include "ctm/io/flat_file.hpp"

#include <set>

#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"

#ifndef CTM_VERSION
#define CTM_VERSION "unknown"
#endif

namespace ctm::io {

int64_t column_size(const ColumnData& data) {
  return std::visit([](const auto& v) { return static_cast<int64_t>(v.size()); }, data);
}

std::vector<int64_t> stored_offsets(const Column& offsets, int64_t base, int64_t total, bool last) {
  std::vector<int64_t> out = std::get<std::vector<int64_t>>(offsets.data);
  for (auto& o : out) o += base;
  if (last) out.push_back(total);
  return out;
}

void write_column_part(h5::Group& g, const std::string& name, const ColumnData& data, int64_t size,
                       int64_t offset, const h5::Storage& storage, h5::Hid xfer) {
  std::visit(
      [&](const auto& v) {
        using T = typename std::decay_t<decltype(v)>::value_type;
        h5::Dataset d = g.create_dataset<T>(name, size, storage);
        if (size > 0) d.write(v.data(), offset, static_cast<int64_t>(v.size()), xfer);
      },
      data);
}

void write_strings(h5::Group& g, const std::vector<StringColumn>& strings) {
  for (const auto& s : strings) g.write_strings(s.name, s.data);
}

void write_attrs(h5::Group& g, const std::vector<Attr>& attrs) {
  for (const auto& a : attrs) {
    if (const auto* s = std::get_if<std::string>(&a.value)) {
      g.set_string_attr(a.name, *s);
    } else if (const auto* i = std::get_if<int64_t>(&a.value)) {
      g.set_int_attr(a.name, *i);
    } else {
      g.set_double_attr(a.name, std::get<double>(a.value));
    }
  }
}

void check_flat_file(const FlatFile& file) {
  std::set<std::string> names;
  for (const auto& c : file.columns) names.insert(c.name);
  for (const auto& c : file.columns) {
    if (c.offsets_of.empty()) continue;
    CTM_CHECK(std::holds_alternative<std::vector<int64_t>>(c.data), "offsets column '", c.name,
              "' is not int64");
    CTM_CHECK(names.count(c.offsets_of), "offsets column '", c.name, "' indexes '", c.offsets_of,
              "', which the file does not have");
  }
}

void write_flat_file(const std::string& path, const FlatFile& file, const h5::Storage& storage) {
  check_flat_file(file);
  h5::AtomicWrite out(path);
  for (const auto& c : file.columns) {
    if (c.offsets_of.empty()) {
      write_column_part(out.file(), c.name, c.data, column_size(c.data), 0, storage);
      continue;
    }
    int64_t total = 0;
    for (const auto& of : file.columns)
      if (of.name == c.offsets_of) total = column_size(of.data);
    const ColumnData stored = stored_offsets(c, 0, total, /*last=*/true);
    write_column_part(out.file(), c.name, stored, column_size(stored), 0, storage);
  }
  write_strings(out.file(), file.strings);
  write_attrs(out.file(), file.attrs);
  out.commit();
}

// ---- header ----------------------------------------------------------------------------------------------

std::vector<Attr> header_attrs(const std::string& format, int64_t version, const RunInfo& run) {
  const Json settings = parse_json(run.settings, "the settings attribute");
  CTM_CHECK(settings.is_object(), "the settings attribute must be a JSON object, got: ", run.settings);
  return {
      {"format", format},         {"format_version", version},    {"ctm_version", std::string(CTM_VERSION)},
      {"settings", run.settings}, {"model_name", run.model_name}, {"dataset_name", run.dataset_name}};
}

RunInfo read_header(const h5::File& f, const std::string& format, int64_t version) {
  const std::string got = f.has_attr("format") ? f.string_attr("format") : "(none)";
  CTM_CHECK(got == format, "'", f.file(), "': format attribute is '", got, "', expected '", format, "'");
  const int64_t v = f.int_attr("format_version");
  CTM_CHECK(v == version, "'", f.file(), "': format_version ", v, " (this ctm reads version ", version, ")");
  RunInfo run;
  run.settings = f.string_attr("settings");
  run.model_name = f.string_attr("model_name");
  run.dataset_name = f.string_attr("dataset_name");
  run.ctm_version = f.string_attr("ctm_version");
  return run;
}

// ---- readers' checks -------------------------------------------------------------------------------------

template <class T>
std::vector<T> read_exact(const h5::Group& g, const std::string& name, int64_t n) {
  h5::Dataset d = g.dataset(name);
  CTM_CHECK(d.size() == n, d.where(), ": ", d.size(), " values, expected ", n);
  return d.read<T>();
}
template std::vector<int8_t> read_exact(const h5::Group&, const std::string&, int64_t);
template std::vector<int16_t> read_exact(const h5::Group&, const std::string&, int64_t);
template std::vector<int32_t> read_exact(const h5::Group&, const std::string&, int64_t);
template std::vector<int64_t> read_exact(const h5::Group&, const std::string&, int64_t);
template std::vector<float> read_exact(const h5::Group&, const std::string&, int64_t);
template std::vector<double> read_exact(const h5::Group&, const std::string&, int64_t);

std::vector<std::string> read_strings_exact(const h5::Group& g, const std::string& name, int64_t n) {
  h5::Dataset d = g.dataset(name);
  CTM_CHECK(d.size() == n, d.where(), ": ", d.size(), " strings, expected ", n);
  return d.read_strings();
}

std::vector<int64_t> read_offsets(const h5::Group& g, const std::string& name, int64_t items, int64_t total) {
  const std::string w = g.where(name);
  std::vector<int64_t> o = read_exact<int64_t>(g, name, items + 1);
  CTM_CHECK(o[0] == 0, w, ": starts at ", o[0], ", not 0");
  for (int64_t i = 0; i < items; ++i)
    CTM_CHECK(o[i + 1] >= o[i], w, ": decreases at item ", i, " (", o[i], " -> ", o[i + 1], ")");
  CTM_CHECK(o[items] == total, w, ": ends at ", o[items], " but the data has ", total, " values");
  return o;
}

}  // namespace ctm::io
