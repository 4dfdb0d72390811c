// HDF5 files through the C API: RAII handles, 1-D datasets (numeric ones chunked through the shuffle and
// deflate filters, variable-length UTF-8 strings), scalar attributes, and an atomic write. Every HDF5 call
// is checked (CTM_H5): a failure throws ctm::Error naming the call, where it was made, the file and object
// it was working on and HDF5's own error stack; HDF5's printing to stderr is turned off.
//
// The library is the parallel (MPI) build; io uses it with the default (POSIX) driver. dist writes files
// collectively by passing an MPI-IO access list to File::create and a collective transfer list to
// Dataset::write, so <hdf5.h> (and the <mpi.h> it includes) stays out of this header. Debian's parallel HDF5
// is built without thread safety: use this layer from one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ctm::io::h5 {

using Hid = int64_t;         // hid_t (checked against <hdf5.h> in the source)
constexpr Hid kDefault = 0;  // H5P_DEFAULT

// Throws the ctm::Error described above. `what` names the file and object ("'x.h5' dataset '/a'").
[[noreturn]] void fail(const char* call, const char* src, int line, const std::string& what);

// Initialises the library once and turns its error printing off (our messages carry its stack). File::create
// and File::open call it; call it before any other HDF5 call made outside this layer.
void init();

}  // namespace ctm::io::h5

// Evaluates an HDF5 call and returns its result; a negative result (HDF5's failure) throws through
// ctm::io::h5::fail. `what` is evaluated only on failure.
#define CTM_H5(call, what)                                                      \
  ([&]() {                                                                      \
    auto ctm_h5_rc_ = (call);                                                   \
    if (ctm_h5_rc_ < 0) ::ctm::io::h5::fail(#call, __FILE__, __LINE__, (what)); \
    return ctm_h5_rc_;                                                          \
  }())

namespace ctm::io::h5 {

enum class Type { I8, I16, I32, I64, F32, F64, String };
const char* type_name(Type t);  // "int8", ..., "float64", "string"

template <class T>
constexpr Type type_of();
template <>
constexpr Type type_of<int8_t>() {
  return Type::I8;
}
template <>
constexpr Type type_of<int16_t>() {
  return Type::I16;
}
template <>
constexpr Type type_of<int32_t>() {
  return Type::I32;
}
template <>
constexpr Type type_of<int64_t>() {
  return Type::I64;
}
template <>
constexpr Type type_of<float>() {
  return Type::F32;
}
template <>
constexpr Type type_of<double>() {
  return Type::F64;
}

// Owns one HDF5 identifier (file, group, dataset, dataspace, type, property list, attribute) and releases it
// on destruction.
class Id {
 public:
  Id() = default;
  explicit Id(Hid id) : id_(id) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.release()) {}
  Id& operator=(Id&& o) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Hid get() const { return id_; }
  Hid release() {
    Hid id = id_;
    id_ = -1;
    return id;
  }
  void reset();  // releases quietly (destructors must not throw)

 private:
  Hid id_ = -1;
};

// How numeric datasets are stored: chunks of up to `chunk` elements through shuffle + deflate at `deflate`
// (1-9; 0 = no filters, still chunked). Empty datasets are stored contiguous (HDF5 chunks cannot be 0 long).
struct Storage {
  int64_t chunk = 65536;
  int deflate = 4;
};

// One 1-D dataset.
class Dataset {
 public:
  Dataset(Id id, std::string where) : id_(std::move(id)), where_(std::move(where)) {}
  const std::string& where() const { return where_; }  // "'file.h5' dataset '/name'"
  Hid id() const { return id_.get(); }
  int64_t size() const;
  Type type() const;  // ctm::Error for a type that is none of Type

  // Writes values [offset, offset + count) of the dataset from data. xfer: a transfer property list (dist
  // passes a collective one). count 0 selects nothing, so a rank without data still takes part in a
  // collective write.
  template <class T>
  void write(const T* data, int64_t offset, int64_t count, Hid xfer = kDefault);
  void write_strings(const std::vector<std::string>& values);  // the whole dataset; UTF-8, no NUL

  // Reads the whole dataset, or values [offset, offset + count); the dataset's type must be T exactly.
  template <class T>
  std::vector<T> read() const;
  template <class T>
  std::vector<T> read(int64_t offset, int64_t count) const;
  std::vector<std::string> read_strings() const;

 private:
  void check_type(Type want) const;
  Id id_;
  std::string where_;
};

// A group of a file (its root group for a File). Names are paths relative to the group ("a/b"); datasets
// and groups are created with their missing parent groups.
class Group {
 public:
  Group(Id id, std::string file, std::string path)
      : id_(std::move(id)), file_(std::move(file)), path_(std::move(path)) {}
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }  // "/" or "/chosen"
  Hid id() const { return id_.get(); }

  bool exists(const std::string& name) const;  // a link of that name (every parent must exist or be absent)
  Group create_group(const std::string& name);
  Group open_group(const std::string& name) const;

  // A numeric dataset of `size` elements (values written later with Dataset::write).
  template <class T>
  Dataset create_dataset(const std::string& name, int64_t size, const Storage& storage = {});
  template <class T>
  void write(const std::string& name, const std::vector<T>& values, const Storage& storage = {});
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  Dataset dataset(const std::string& name) const;
  template <class T>
  std::vector<T> read(const std::string& name) const {
    return dataset(name).read<T>();
  }
  std::vector<std::string> read_strings(const std::string& name) const {
    return dataset(name).read_strings();
  }

  // Scalar attributes of this group; setting one that exists replaces it.
  void set_string_attr(const std::string& name, const std::string& value);
  void set_int_attr(const std::string& name, int64_t value);
  void set_double_attr(const std::string& name, double value);
  bool has_attr(const std::string& name) const;
  std::string string_attr(const std::string& name) const;  // variable- or fixed-length string
  int64_t int_attr(const std::string& name) const;         // any integer type that fits
  double double_attr(const std::string& name) const;       // any float type

  std::string where(const std::string& name, const char* kind = "dataset") const;  // for messages

 protected:
  Id id_;
  std::string file_, path_;
};

class File : public Group {
 public:
  // Creates (truncates) a file; access: a file-access property list (dist passes an MPI-IO one).
  static File create(const std::string& path, Hid access = kDefault);
  // Opens an existing file read-only (or read-write); ctm::Error naming the file when it is missing or is
  // not an HDF5 file.
  static File open(const std::string& path, bool write = false, Hid access = kDefault);
  void close();  // flushes and closes, checked (the destructor closes quietly); collective under MPI-IO
  void discard() noexcept;  // closes quietly (on an error path)

 private:
  using Group::Group;
};

// The name an output is written under before it is renamed into place: beside the target (so the rename
// stays on one file system), unique per process.
std::string temp_path(const std::string& path);

// An HDF5 file written under temp_path(path) and renamed into place by commit(). Destroyed without commit
// (an exception unwinding), it closes and removes the temporary file, so `path` never holds a partial file.
class AtomicWrite {
 public:
  explicit AtomicWrite(std::string path);  // creates parent folders
  ~AtomicWrite();
  AtomicWrite(const AtomicWrite&) = delete;
  AtomicWrite& operator=(const AtomicWrite&) = delete;
  File& file() { return file_; }
  const std::string& tmp_path() const { return tmp_; }
  void commit();

 private:
  std::string path_, tmp_;
  File file_;
  bool committed_ = false;
};

// ctm::Error naming `what` unless text is valid UTF-8 without NUL bytes (HDF5 strings end at the first NUL;
// h5py decodes them as UTF-8). String datasets and attributes are checked with it before they are written.
void check_text(const std::string& text, const std::string& what);

// Renames tmp over path (ctm::Error naming both on failure).
void rename_into_place(const std::string& tmp, const std::string& path);

}  // namespace ctm::io::h5
