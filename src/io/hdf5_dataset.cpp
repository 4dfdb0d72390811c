// Datasets of the HDF5 layer: creation (chunked + shuffle + deflate), typed hyperslab reads and writes,
// variable-length UTF-8 strings.
#include <hdf5.h>

#include <algorithm>

#include "ctm/core/error.hpp"
#include "ctm/io/hdf5.hpp"
#include "hdf5_internal.hpp"

namespace ctm::io::h5 {
namespace {

// The memory (native) and file (little-endian whatever the machine, as h5py and numpy expect) types.
struct TypePair {
  hid_t mem, file;
};
TypePair h5_types(Type t) {
  switch (t) {
    case Type::I8:
      return {H5T_NATIVE_INT8, H5T_STD_I8LE};
    case Type::I16:
      return {H5T_NATIVE_INT16, H5T_STD_I16LE};
    case Type::I32:
      return {H5T_NATIVE_INT32, H5T_STD_I32LE};
    case Type::I64:
      return {H5T_NATIVE_INT64, H5T_STD_I64LE};
    case Type::F32:
      return {H5T_NATIVE_FLOAT, H5T_IEEE_F32LE};
    case Type::F64:
      return {H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE};
    case Type::String:
      break;
  }
  throw Error("strings have no fixed-size HDF5 type");
}

// A 1-D dataspace of n elements with [offset, offset + count) selected (nothing when count is 0).
Id selection(int64_t n, int64_t offset, int64_t count, const std::string& w) {
  const hsize_t dims = static_cast<hsize_t>(n);
  Id space(CTM_H5(H5Screate_simple(1, &dims, nullptr), w));
  if (count == 0) {
    CTM_H5(H5Sselect_none(space.get()), w);
  } else {
    const hsize_t start = static_cast<hsize_t>(offset), cnt = static_cast<hsize_t>(count);
    CTM_H5(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &cnt, nullptr), w);
  }
  return space;
}

// Length of the valid UTF-8 sequence starting at s[i] (0 when it is not valid).
size_t utf8_length(const std::string& s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  int n = 0;
  uint32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 1, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 2, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n >= s.size()) return 0;
  for (int k = 1; k <= n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;  // overlong, too large, surrogate
  return static_cast<size_t>(n) + 1;
}

// Frees the strings HDF5 allocated for a variable-length read, also when copying them throws.
struct VlenReclaim {
  hid_t type, space;
  std::vector<char*>& buf;
  ~VlenReclaim() { H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf.data()); }
};

}  // namespace

Id string_type(const std::string& what) {
  Id t(CTM_H5(H5Tcopy(H5T_C_S1), what));
  CTM_H5(H5Tset_size(t.get(), H5T_VARIABLE), what);
  CTM_H5(H5Tset_cset(t.get(), H5T_CSET_UTF8), what);
  return t;
}

Id link_create_list(const std::string& what) {
  Id lcpl(CTM_H5(H5Pcreate(H5P_LINK_CREATE), what));
  CTM_H5(H5Pset_create_intermediate_group(lcpl.get(), 1), what);
  return lcpl;
}

void check_text(const std::string& text, const std::string& what) {
  for (size_t i = 0; i < text.size();) {
    CTM_CHECK(text[i] != '\0', what, ": NUL byte at offset ", i, " (HDF5 strings end at the first NUL)");
    const size_t n = utf8_length(text, i);
    CTM_CHECK(n > 0, what, ": invalid UTF-8 at byte offset ", i);
    i += n;
  }
}

// ---- Dataset ---------------------------------------------------------------------------------------------

int64_t Dataset::size() const {
  Id space(CTM_H5(H5Dget_space(id()), where_));
  hsize_t dims = 0;
  CTM_H5(H5Sget_simple_extent_dims(space.get(), &dims, nullptr), where_);
  return static_cast<int64_t>(dims);
}

Type Dataset::type() const {
  Id t(CTM_H5(H5Dget_type(id()), where_));
  const H5T_class_t c = H5Tget_class(t.get());
  const size_t bytes = H5Tget_size(t.get());
  if (c == H5T_INTEGER && H5Tget_sign(t.get()) == H5T_SGN_2) {
    if (bytes == 1) return Type::I8;
    if (bytes == 2) return Type::I16;
    if (bytes == 4) return Type::I32;
    if (bytes == 8) return Type::I64;
  }
  if (c == H5T_FLOAT && bytes == 4) return Type::F32;
  if (c == H5T_FLOAT && bytes == 8) return Type::F64;
  if (c == H5T_STRING && CTM_H5(H5Tis_variable_str(t.get()), where_) > 0) return Type::String;
  throw Error(str(where_, ": unsupported type (HDF5 class ", static_cast<int>(c), ", ", bytes,
                  " bytes; ctm writes signed integers, IEEE floats and variable-length strings)"));
}

void Dataset::check_type(Type want) const {
  const Type t = type();
  CTM_CHECK(t == want, where_, " is ", type_name(t), ", expected ", type_name(want));
}

template <class T>
void Dataset::write(const T* data, int64_t offset, int64_t count, Hid xfer) {
  check_type(type_of<T>());
  const int64_t n = size();
  CTM_CHECK(offset >= 0 && count >= 0 && offset + count <= n, where_, ": writing [", offset, ", ",
            offset + count, ") outside its ", n, " values");
  Id file_space = selection(n, offset, count, where_);
  Id mem_space = selection(count, 0, count, where_);
  static const T none{};  // HDF5 wants a buffer even when nothing is selected
  CTM_H5(H5Dwrite(id(), h5_types(type_of<T>()).mem, mem_space.get(), file_space.get(), xfer,
                  count ? data : &none),
         where_);
}

template <class T>
std::vector<T> Dataset::read(int64_t offset, int64_t count) const {
  check_type(type_of<T>());
  const int64_t n = size();
  CTM_CHECK(offset >= 0 && count >= 0 && offset + count <= n, where_, ": reading [", offset, ", ",
            offset + count, ") outside its ", n, " values");
  std::vector<T> out(static_cast<size_t>(count));
  if (count == 0) return out;
  Id file_space = selection(n, offset, count, where_);
  Id mem_space = selection(count, 0, count, where_);
  CTM_H5(
      H5Dread(id(), h5_types(type_of<T>()).mem, mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()),
      where_);
  return out;
}

template <class T>
std::vector<T> Dataset::read() const {
  return read<T>(0, size());
}

void Dataset::write_strings(const std::vector<std::string>& values) {
  check_type(Type::String);
  CTM_CHECK(static_cast<int64_t>(values.size()) == size(), where_, ": writing ", values.size(),
            " strings into ", size());
  std::vector<const char*> ptrs(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    check_text(values[i], str(where_, " [", i, "]"));
    ptrs[i] = values[i].c_str();
  }
  if (values.empty()) return;
  Id type = string_type(where_);
  CTM_H5(H5Dwrite(id(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where_);
}

std::vector<std::string> Dataset::read_strings() const {
  check_type(Type::String);
  std::vector<std::string> out;
  const int64_t n = size();
  if (n == 0) return out;
  Id file_type_id(CTM_H5(H5Dget_type(id()), where_));
  Id type(CTM_H5(H5Tcopy(file_type_id.get()), where_));  // same character set as the file's
  Id space(CTM_H5(H5Dget_space(id()), where_));
  std::vector<char*> buf(static_cast<size_t>(n), nullptr);
  CTM_H5(H5Dread(id(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), where_);
  VlenReclaim reclaim{type.get(), space.get(), buf};
  out.reserve(buf.size());
  for (char* s : buf) out.emplace_back(s ? s : "");
  return out;
}

// ---- creation --------------------------------------------------------------------------------------------

template <class T>
Dataset Group::create_dataset(const std::string& name, int64_t size, const Storage& storage) {
  const std::string w = where(name);
  CTM_CHECK(size >= 0 && storage.chunk > 0 && storage.deflate >= 0 && storage.deflate <= 9, w, ": bad size ",
            size, " or storage (chunk ", storage.chunk, ", deflate ", storage.deflate, ")");
  const hsize_t dims = static_cast<hsize_t>(size);
  Id space(CTM_H5(H5Screate_simple(1, &dims, nullptr), w));
  Id dcpl(CTM_H5(H5Pcreate(H5P_DATASET_CREATE), w));
  if (size > 0) {
    const hsize_t chunk = static_cast<hsize_t>(std::min(size, storage.chunk));
    CTM_H5(H5Pset_chunk(dcpl.get(), 1, &chunk), w);
    if (storage.deflate > 0) {
      CTM_H5(H5Pset_shuffle(dcpl.get()), w);
      CTM_H5(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(storage.deflate)), w);
    }
    // Every value is written, so no fill values (parallel HDF5 would otherwise write them to filtered
    // chunks).
    CTM_H5(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), w);
  }
  Id lcpl = link_create_list(w);
  Id d(CTM_H5(H5Dcreate2(id(), name.c_str(), h5_types(type_of<T>()).file, space.get(), lcpl.get(), dcpl.get(),
                         H5P_DEFAULT),
              w));
  return Dataset(std::move(d), w);
}

template <class T>
void Group::write(const std::string& name, const std::vector<T>& values, const Storage& storage) {
  const auto n = static_cast<int64_t>(values.size());
  Dataset d = create_dataset<T>(name, n, storage);
  if (n > 0) d.write(values.data(), 0, n);
}

#define CTM_H5_INSTANTIATE(T)                                                             \
  template void Dataset::write<T>(const T*, int64_t, int64_t, Hid);                       \
  template std::vector<T> Dataset::read<T>() const;                                       \
  template std::vector<T> Dataset::read<T>(int64_t, int64_t) const;                       \
  template Dataset Group::create_dataset<T>(const std::string&, int64_t, const Storage&); \
  template void Group::write<T>(const std::string&, const std::vector<T>&, const Storage&);
CTM_H5_INSTANTIATE(int8_t)
CTM_H5_INSTANTIATE(int16_t)
CTM_H5_INSTANTIATE(int32_t)
CTM_H5_INSTANTIATE(int64_t)
CTM_H5_INSTANTIATE(float)
CTM_H5_INSTANTIATE(double)
#undef CTM_H5_INSTANTIATE

}  // namespace ctm::io::h5
