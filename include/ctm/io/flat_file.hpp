// A file as flat 1-D datasets (CSR for ragged data) plus root attributes: what the score-file layouts
// (ce_scores.hpp, rollouts.hpp) turn their per-item structs into, and what the writers store: serially here,
// collectively in dist (h5_collective.hpp), with the same dataset names, types, chunking and values.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ctm/io/hdf5.hpp"

namespace ctm::io {

using ColumnData = std::variant<std::vector<int8_t>, std::vector<int16_t>, std::vector<int32_t>,
                                std::vector<int64_t>, std::vector<float>, std::vector<double>>;

// One numeric dataset, as one writer's contiguous part of it (the whole array for the serial writer, a
// rank's slice for the collective one).
struct Column {
  std::string name;  // path in the file, e.g. "chosen/token_ids"
  ColumnData data;
  // Set for a CSR offsets column (int64): the column it indexes. Its values here count from 0 at this part's
  // first value of `offsets_of`; the writer adds where that part starts in the file, and appends the total
  // length after the last item, so the dataset holds items + 1 values.
  std::string offsets_of;
};

struct StringColumn {
  std::string name;
  std::vector<std::string> data;  // valid UTF-8 without NUL
};

using AttrValue = std::variant<std::string, int64_t, double>;
struct Attr {
  std::string name;
  AttrValue value;
};

struct FlatFile {
  std::vector<Column> columns;
  std::vector<StringColumn> strings;
  std::vector<Attr> attrs;  // on the root group
};

int64_t column_size(const ColumnData& data);

// An offsets column's stored values for one part: its values shifted by `base`, plus `total` when `last`.
std::vector<int64_t> stored_offsets(const Column& offsets, int64_t base, int64_t total, bool last);

// Creates a dataset of `size` values of the data's type and writes `data` at [offset, offset + its size)
// through the transfer list `xfer` (collective under MPI-IO: every rank calls it, with or without data).
void write_column_part(h5::Group& g, const std::string& name, const ColumnData& data, int64_t size,
                       int64_t offset, const h5::Storage& storage, h5::Hid xfer = h5::kDefault);

void write_strings(h5::Group& g, const std::vector<StringColumn>& strings);
void write_attrs(h5::Group& g, const std::vector<Attr>& attrs);

// ctm::Error naming the column unless every offsets column is int64 and names a column of the file.
void check_flat_file(const FlatFile& file);

// The serial writer: the whole file, atomically (temporary name, renamed when complete).
void write_flat_file(const std::string& path, const FlatFile& file, const h5::Storage& storage = {});

// ---- what every score file carries ---------------------------------------------------------------------

// Root attributes of every ctm score file: format, format_version, ctm_version, settings, model_name,
// dataset_name.
struct RunInfo {
  std::string settings = "{}";  // the run's resolved settings, a JSON object
  std::string model_name, dataset_name;
  std::string ctm_version;  // read back by the readers; writers store the running ctm's version
};

// The header attributes (ctm::Error unless settings is a JSON object).
std::vector<Attr> header_attrs(const std::string& format, int64_t version, const RunInfo& run);
// Reads them back; ctm::Error naming the file unless its format and version are the ones given.
RunInfo read_header(const h5::File& f, const std::string& format, int64_t version);

// ---- readers' checks -------------------------------------------------------------------------------------

// A numeric or string dataset that must hold n values (ctm::Error naming the file and dataset otherwise).
template <class T>
std::vector<T> read_exact(const h5::Group& g, const std::string& name, int64_t n);
std::vector<std::string> read_strings_exact(const h5::Group& g, const std::string& name, int64_t n);

// A CSR offsets dataset of items + 1 values into a dataset of `total` values: starts at 0, never decreases,
// ends at total.
std::vector<int64_t> read_offsets(const h5::Group& g, const std::string& name, int64_t items, int64_t total);

// v[begin, end) as a vector.
template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t begin, int64_t end) {
  return std::vector<T>(v.begin() + begin, v.begin() + end);
}

}  // namespace ctm::io
