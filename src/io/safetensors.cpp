#include "ctm/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"
#include "ctm/io/json.hpp"

namespace ctm::io {

namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  std::size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U64, "U64", 8},   {DType::U32, "U32", 4}, {DType::U16, "U16", 2}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeRow& row_of(DType dt) {
  for (const auto& r : kDTypes)
    if (r.dtype == dt) return r;
  throw Error("internal: unknown safetensors dtype");
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

}  // namespace

const char* dtype_name(DType dt) {
  return row_of(dt).name;
}
std::size_t dtype_size(DType dt) {
  return row_of(dt).size;
}

DType parse_dtype(const std::string& name, const std::string& where) {
  for (const auto& r : kDTypes)
    if (name == r.name) return r.dtype;
  throw Error(str(where, ": unsupported dtype ", quoted(name),
                  " (expected F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8 or BOOL)"));
}

int64_t TensorInfo::numel() const {
  // A zero dimension empties the tensor. The header check bounds the product of the dimensions before a zero
  // by 2^64 only (as the reference implementation does), so multiplying them first could overflow int64.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reading
// ------------------------------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(str(path, ": cannot open safetensors file: ", std::strerror(errno)));
  try {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error(str(path, ": cannot stat: ", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw Error(str(path, ": not a regular file"));
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    if (file_size < 8)
      throw Error(
          str(path, ": truncated safetensors file (", file_size, " bytes, the header length alone is 8)"));
    map_size_ = static_cast<std::size_t>(file_size);
    map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      throw Error(str(path, ": cannot mmap: ", std::strerror(errno)));
    }
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian u64
    if (header_len > kMaxHeaderBytes)
      throw Error(str(path, ": safetensors header length ", header_len, " exceeds the limit of ",
                      kMaxHeaderBytes, " bytes (corrupt or not a safetensors file)"));
    if (header_len > file_size - 8)
      throw Error(str(path, ": truncated safetensors file: header of ", header_len, " bytes but only ",
                      file_size - 8, " bytes follow the length"));
    data_ = bytes + 8 + header_len;
    data_size_ = file_size - 8 - header_len;
    parse_header(header_len);
  } catch (...) {
    if (map_) ::munmap(map_, map_size_);
    ::close(fd_);
    throw;
  }
}

void SafetensorsFile::parse_header(uint64_t header_len) {
  const char* text = reinterpret_cast<const char*>(static_cast<const uint8_t*>(map_) + 8);
  const Json header = parse_json(std::string_view(text, header_len), path_ + " (safetensors header)");
  if (!header.is_object())
    throw Error(str(path_, ": safetensors header must be a JSON object, got ", header.type_name()));
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(str(path_, ": \"__metadata__\" must be an object of strings"));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw Error(str(path_, ": \"__metadata__\" value of ", quoted(m.key()), " must be a string"));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = str(path_, ": tensor ", quoted(name));
    if (!v.is_object()) throw Error(str(where, ": entry must be an object, got ", v.type_name()));
    TensorInfo t;
    t.name = name;
    t.dtype = parse_dtype(require_string(v, "dtype", where), where);
    const Json& shape = require_field(v, "shape", where);
    if (!shape.is_array()) throw Error(str(where, ": \"shape\" must be an array"));
    // numel x element size must not overflow: bound every product by the data section size (a tensor with a
    // zero dimension is empty whatever the other dimensions are, but each dimension must still be sane).
    uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : shape) {
      if (!d.is_number_unsigned() ||
          d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error(str(where, ": \"shape\" entries must be non-negative integers, got ", d.dump()));
      const uint64_t dim = d.get<uint64_t>();
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim)
        overflow = true;
      else
        numel *= dim;
    }
    const Json& offsets = require_field(v, "data_offsets", where);
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      throw Error(str(where, ": \"data_offsets\" must be [begin, end] with non-negative integers, got ",
                      offsets.dump()));
    t.begin = offsets[0].get<uint64_t>();
    t.end = offsets[1].get<uint64_t>();
    if (t.begin > t.end) throw Error(str(where, ": data_offsets begin ", t.begin, " > end ", t.end));
    if (t.end > data_size_)
      throw Error(str(where, ": data_offsets [", t.begin, ", ", t.end,
                      "] run past the end of the data section (", data_size_,
                      " bytes): truncated or corrupt file"));
    const uint64_t elem = dtype_size(t.dtype);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != t.nbytes())
      throw Error(str(where, ": ", dtype_name(t.dtype), " shape ", shape.dump(), " needs ",
                      overflow ? std::string("more than 2^64") : std::to_string(numel * elem),
                      " bytes but data_offsets span ", t.nbytes()));
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // Non-overlapping: sorted by begin, each tensor must end before the next one starts.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (b.begin < a.end && b.nbytes() > 0 && a.nbytes() > 0)
      throw Error(str(path_, ": tensors ", quoted(a.name), " [", a.begin, ", ", a.end, ") and ",
                      quoted(b.name), " [", b.begin, ", ", b.end, ") overlap"));
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
  if (fd_ >= 0) ::close(fd_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept {
  *this = std::move(o);
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_size_);
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    map_ = std::exchange(o.map_, nullptr);
    map_size_ = std::exchange(o.map_size_, 0);
    data_ = std::exchange(o.data_, nullptr);
    data_size_ = std::exchange(o.data_size_, 0);
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(str(path_, ": no tensor ", quoted(name)));
  return tensors_[it->second];
}

void SafetensorsFile::release(uint64_t begin, uint64_t end) const {
  if (end <= begin || end > data_size_) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto base = reinterpret_cast<uintptr_t>(map_);
  const uintptr_t lo = reinterpret_cast<uintptr_t>(data_ + begin) / page * page;
  const uintptr_t hi = std::min<uintptr_t>(base + map_size_, reinterpret_cast<uintptr_t>(data_ + end));
  // A read-only file mapping: dropped pages are simply read again on the next access.
  ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

// ---- a folder of shards
// -------------------------------------------------------------------------------------

namespace {
bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

SafetensorsSet::SafetensorsSet(const std::string& dir_or_file) {
  if (!is_dir(dir_or_file)) {
    files_.push_back(std::make_unique<SafetensorsFile>(dir_or_file));
  } else {
    const std::string index_path = dir_or_file + "/model.safetensors.index.json";
    const std::string single_path = dir_or_file + "/model.safetensors";
    if (file_exists(index_path)) {
      const Json index = read_json_file(index_path);
      const Json& map = require_field(index, "weight_map", index_path);
      if (!map.is_object() || map.empty())
        throw Error(str(index_path, ": \"weight_map\" must be a non-empty object {tensor: file}"));
      std::map<std::string, std::size_t> shard_ids;
      std::map<std::string, std::string> shard_of;
      for (auto it = map.begin(); it != map.end(); ++it) {
        if (!it.value().is_string())
          throw Error(str(index_path, ": weight_map entry ", quoted(it.key()), " must name a file"));
        const std::string shard = it.value().get<std::string>();
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
          throw Error(str(index_path, ": weight_map entry ", quoted(it.key()), " names ", quoted(shard),
                          ", which is not a file name inside the folder"));
        if (!shard_ids.count(shard)) {
          shard_ids[shard] = files_.size();
          files_.push_back(std::make_unique<SafetensorsFile>(dir_or_file + "/" + shard));
        }
        shard_of[it.key()] = shard;
      }
      for (const auto& [name, shard] : shard_of) {
        const std::size_t id = shard_ids[shard];
        if (!files_[id]->contains(name))
          throw Error(str(index_path, ": tensor ", quoted(name), " is mapped to ", quoted(shard),
                          " but that file does not contain it"));
        where_[name] = id;
      }
      return;
    } else if (file_exists(single_path)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single_path));
    } else {
      throw Error(str(dir_or_file, ": no model.safetensors or model.safetensors.index.json"));
    }
  }
  for (const auto& t : files_[0]->tensors()) where_[t.name] = 0;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, id] : where_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsSet::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    throw Error(str(files_.empty() ? std::string("safetensors") : files_[0]->path(), ": missing tensor ",
                    quoted(name)));
  return *files_[it->second];
}

uint64_t SafetensorsSet::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [name, id] : where_) n += files_[id]->info(name).nbytes();
  return n;
}

// ---- writing
// ------------------------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    CTM_CHECK(!t.name.empty() && t.name != "__metadata__", path, ": invalid tensor name ", quoted(t.name));
    CTM_CHECK(seen.insert(t.name).second, path, ": tensor ", quoted(t.name), " written twice");
    uint64_t numel = 1;
    Json shape = Json::array();
    for (int64_t d : t.shape) {
      CTM_CHECK(d >= 0, path, ": tensor ", quoted(t.name), " has a negative dimension");
      numel *= static_cast<uint64_t>(d);
      shape.push_back(d);
    }
    const uint64_t nbytes = numel * dtype_size(t.dtype);
    CTM_CHECK(t.data || t.write || nbytes == 0, path, ": tensor ", quoted(t.name), " has no data");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", shape}, {"data_offsets", {offset, offset + nbytes}}};
    sizes.push_back(nbytes);
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  AtomicFile file(path);
  std::ostream& out = file.stream();
  uint8_t len_bytes[8];
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (sizes[i] == 0 && !t.write) {
      continue;
    } else if (t.data) {
      out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(sizes[i]));
    } else {
      const auto before = out.tellp();
      t.write(out);
      CTM_CHECK(!out.good() || out.tellp() - before == static_cast<std::streamoff>(sizes[i]), path,
                ": tensor ", quoted(t.name), " wrote ", out.tellp() - before, " bytes, expected ", sizes[i]);
    }
  }
  CTM_CHECK(out.good(), "cannot write '", path, "': write failed (disk full or quota?)");
  file.commit();
}

}  // namespace ctm::io
