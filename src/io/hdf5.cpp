// Files, groups, attributes, errors and the atomic write of the HDF5 layer (datasets: hdf5_dataset.cpp).
#include "ctm/io/hdf5.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <type_traits>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "hdf5_internal.hpp"

static_assert(std::is_same_v<hid_t, ctm::io::h5::Hid>, "Hid must be hid_t");
static_assert(H5P_DEFAULT == ctm::io::h5::kDefault, "kDefault must be H5P_DEFAULT");

namespace ctm::io::h5 {
namespace {

// The innermost entries of HDF5's error stack (the cause; the outer ones repeat the API call).
herr_t collect_error(unsigned /*n*/, const H5E_error2_t* e, void* data) {
  auto& entries = *static_cast<std::vector<std::string>*>(data);
  char minor[256] = "";
  H5Eget_msg(e->min_num, nullptr, minor, sizeof minor);
  entries.push_back(str(e->func_name ? e->func_name : "?", ": ", e->desc ? e->desc : "", " (", minor, ")"));
  return 0;
}

std::string error_stack() {
  std::vector<std::string> entries;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &entries);
  H5Eclear2(H5E_DEFAULT);
  if (entries.empty()) return "no HDF5 error stack";
  std::string out;
  const size_t first = entries.size() > 3 ? entries.size() - 3 : 0;
  for (size_t i = entries.size(); i-- > first;) out += (out.empty() ? "" : " <- ") + entries[i];
  for (char& c : out)
    if (c == '\n') c = ' ';  // some HDF5 messages end in a newline
  return out;
}

Id scalar_space(const std::string& what) {
  return Id(CTM_H5(H5Screate(H5S_SCALAR), what));
}

// Opens attribute `name` of loc; ctm::Error naming it when it is missing or holds more than one value.
Id open_attr(const Group& g, const std::string& name) {
  const std::string w = g.where(name, "attribute");
  CTM_CHECK(g.has_attr(name), w, ": missing");
  Id attr(CTM_H5(H5Aopen(g.id(), name.c_str(), H5P_DEFAULT), w));
  Id space(CTM_H5(H5Aget_space(attr.get()), w));
  CTM_CHECK(CTM_H5(H5Sget_simple_extent_npoints(space.get()), w) == 1, w, ": not a single value");
  return attr;
}

H5T_class_t attr_class(const Id& attr, const std::string& w) {
  Id type(CTM_H5(H5Aget_type(attr.get()), w));
  return H5Tget_class(type.get());
}

void write_attr(Group& g, const std::string& name, hid_t file_type, hid_t mem_type, const void* value) {
  const std::string w = g.where(name, "attribute");
  if (g.has_attr(name)) CTM_H5(H5Adelete(g.id(), name.c_str()), w);
  Id space = scalar_space(w);
  Id attr(CTM_H5(H5Acreate2(g.id(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), w));
  CTM_H5(H5Awrite(attr.get(), mem_type, value), w);
}

std::string join_path(const std::string& base, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return base == "/" ? "/" + name : base + "/" + name;
}

}  // namespace

void fail(const char* call, const char* src, int line, const std::string& what) {
  throw Error(str(what, ": ", call, " failed at ", src, ":", line, ": ", error_stack()));
}

void init() {
  static const bool done = [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::I8:
      return "int8";
    case Type::I16:
      return "int16";
    case Type::I32:
      return "int32";
    case Type::I64:
      return "int64";
    case Type::F32:
      return "float32";
    case Type::F64:
      return "float64";
    case Type::String:
      return "string";
  }
  return "?";
}

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.release();
  }
  return *this;
}

void Id::reset() {
  if (id_ >= 0) H5Idec_ref(id_);  // closes the object when this was its last reference
  id_ = -1;
}

// ---- groups ----------------------------------------------------------------------------------------------

std::string Group::where(const std::string& name, const char* kind) const {
  return str("'", file_, "' ", kind, " '", join_path(path_, name), "'");
}

bool Group::exists(const std::string& name) const {
  // H5Lexists fails (rather than answering false) when a parent is missing, so walk the path link by link.
  std::string prefix = name.rfind('/', 0) == 0 ? "/" : "";
  bool any = false;
  for (size_t pos = 0; pos <= name.size();) {
    size_t end = name.find('/', pos);
    if (end == std::string::npos) end = name.size();
    if (end > pos) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix.append(name, pos, end - pos);
      if (CTM_H5(H5Lexists(id(), prefix.c_str(), H5P_DEFAULT), where(name, "link")) <= 0) return false;
      any = true;
    }
    pos = end + 1;
  }
  return any;
}

Group Group::create_group(const std::string& name) {
  const std::string w = where(name, "group");
  Id lcpl = link_create_list(w);
  Id g(CTM_H5(H5Gcreate2(id(), name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), w));
  return Group(std::move(g), file_, join_path(path_, name));
}

Group Group::open_group(const std::string& name) const {
  const std::string w = where(name, "group");
  CTM_CHECK(exists(name), w, ": missing");
  Id g(CTM_H5(H5Gopen2(id(), name.c_str(), H5P_DEFAULT), w));
  return Group(std::move(g), file_, join_path(path_, name));
}

Dataset Group::dataset(const std::string& name) const {
  const std::string w = where(name);
  CTM_CHECK(exists(name), w, ": missing");
  Id d(CTM_H5(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), w));
  Id space(CTM_H5(H5Dget_space(d.get()), w));
  CTM_CHECK(CTM_H5(H5Sget_simple_extent_ndims(space.get()), w) == 1, w, ": not one-dimensional");
  return Dataset(std::move(d), w);
}

void Group::write_strings(const std::string& name, const std::vector<std::string>& values) {
  const std::string w = where(name);
  Id type = string_type(w);
  const hsize_t n = values.size();
  Id space(CTM_H5(H5Screate_simple(1, &n, nullptr), w));
  Id lcpl = link_create_list(w);
  Id d(CTM_H5(H5Dcreate2(id(), name.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
              w));
  Dataset(std::move(d), w).write_strings(values);
}

// ---- attributes ------------------------------------------------------------------------------------------

bool Group::has_attr(const std::string& name) const {
  return CTM_H5(H5Aexists(id(), name.c_str()), where(name, "attribute")) > 0;
}

void Group::set_string_attr(const std::string& name, const std::string& value) {
  const std::string w = where(name, "attribute");
  check_text(value, w);
  Id type = string_type(w);
  const char* p = value.c_str();
  write_attr(*this, name, type.get(), type.get(), &p);
}

void Group::set_int_attr(const std::string& name, int64_t value) {
  write_attr(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void Group::set_double_attr(const std::string& name, double value) {
  write_attr(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

std::string Group::string_attr(const std::string& name) const {
  const std::string w = where(name, "attribute");
  Id attr = open_attr(*this, name);
  Id type(CTM_H5(H5Aget_type(attr.get()), w));
  CTM_CHECK(H5Tget_class(type.get()) == H5T_STRING, w, ": not a string");
  if (CTM_H5(H5Tis_variable_str(type.get()), w) > 0) {
    char* p = nullptr;
    CTM_H5(H5Aread(attr.get(), type.get(), &p), w);
    std::string out = p ? p : "";
    H5free_memory(p);
    return out;
  }
  std::string out(H5Tget_size(type.get()), '\0');  // fixed length, padded with NULs or spaces
  CTM_H5(H5Aread(attr.get(), type.get(), out.data()), w);
  const H5T_str_t pad = H5Tget_strpad(type.get());
  const char fill = pad == H5T_STR_SPACEPAD ? ' ' : '\0';
  const size_t nul = pad == H5T_STR_SPACEPAD ? out.size() : std::min(out.size(), out.find('\0'));
  out.resize(nul);
  while (!out.empty() && out.back() == fill) out.pop_back();
  return out;
}

int64_t Group::int_attr(const std::string& name) const {
  const std::string w = where(name, "attribute");
  Id attr = open_attr(*this, name);
  CTM_CHECK(attr_class(attr, w) == H5T_INTEGER, w, ": not an integer");
  int64_t v = 0;
  CTM_H5(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), w);
  return v;
}

double Group::double_attr(const std::string& name) const {
  const std::string w = where(name, "attribute");
  Id attr = open_attr(*this, name);
  const H5T_class_t c = attr_class(attr, w);
  CTM_CHECK(c == H5T_FLOAT || c == H5T_INTEGER, w, ": not a number");
  double v = 0;
  CTM_H5(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), w);
  return v;
}

// ---- files -----------------------------------------------------------------------------------------------

File File::create(const std::string& path, Hid access) {
  init();
  const std::string w = str("'", path, "'");
  Id f(CTM_H5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access), w));
  return File(std::move(f), path, "/");
}

File File::open(const std::string& path, bool write, Hid access) {
  init();
  const std::string w = str("'", path, "'");
  std::error_code ec;
  CTM_CHECK(std::filesystem::is_regular_file(path, ec), w, ": no such file");
  CTM_CHECK(CTM_H5(H5Fis_hdf5(path.c_str()), w) > 0, w, ": not an HDF5 file");
  Id f(CTM_H5(H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, access), w));
  return File(std::move(f), path, "/");
}

void File::close() {
  if (id() < 0) return;
  CTM_H5(H5Fclose(id_.release()), str("'", file_, "'"));
}

void File::discard() noexcept {
  id_.reset();
}

// ---- atomic write ----------------------------------------------------------------------------------------

std::string temp_path(const std::string& path) {
  return str(path, ".tmp.", ::getpid());
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(str("cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno)));
}

namespace {
std::string prepared_temp_path(const std::string& path) {
  make_dirs(std::filesystem::path(path).parent_path().string());
  return temp_path(path);
}
}  // namespace

AtomicWrite::AtomicWrite(std::string path)
    : path_(std::move(path)), tmp_(prepared_temp_path(path_)), file_(File::create(tmp_)) {}

AtomicWrite::~AtomicWrite() {
  if (committed_) return;
  file_.discard();
  std::remove(tmp_.c_str());
}

void AtomicWrite::commit() {
  file_.close();
  rename_into_place(tmp_, path_);
  committed_ = true;
}

}  // namespace ctm::io::h5
