// safetensors (https://github.com/huggingface/safetensors) without torch: an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. Files are memory-mapped; the header is validated in full before any
// tensor is touched (size bound, offsets inside the data section and non-overlapping, dtype x shape = byte
// length), so a corrupt or hostile file gives a ctm::Error naming the file and the tensor, never an
// out-of-bounds read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace ctm::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

const char* dtype_name(DType dt);                                      // "F32", ...
DType parse_dtype(const std::string& name, const std::string& where);  // ctm::Error naming the value
std::size_t dtype_size(DType dt);                                      // bytes per element

// Headers larger than this are rejected before they are read (the reference implementation's bound).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets inside the data section
  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;
};

// One memory-mapped safetensors file. Movable, not copyable; the mapping lives as long as the object.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;  // ctm::Error naming the file and the tensor
  // The tensor's bytes inside the mapping (nbytes() of them; not necessarily aligned to the element size).
  const uint8_t* data(const TensorInfo& t) const { return data_ + t.begin; }
  // Drops the mapped pages of a tensor from this process's resident set (they are read again from the file if
  // touched): loaders call it after copying a tensor so the peak memory is the destination, not file + copy.
  void release(const TensorInfo& t) const { release(t.begin, t.end); }
  void release(uint64_t begin, uint64_t end) const;  // bytes [begin, end) of the data section

 private:
  void parse_header(uint64_t header_len);
  std::string path_;
  int fd_ = -1;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  uint64_t data_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a Hugging Face folder: model.safetensors, or the shards named by
// model.safetensors.index.json. Every shard's header is validated on open; the index must name files inside
// the folder, and every tensor it lists must be in the shard it names.
class SafetensorsSet {
 public:
  // dir: a folder, or one .safetensors file.
  explicit SafetensorsSet(const std::string& dir_or_file);
  std::vector<std::string> names() const;  // every tensor, sorted
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const SafetensorsFile& file_of(const std::string& name) const;  // ctm::Error naming the tensor if absent
  const TensorInfo& info(const std::string& name) const { return file_of(name).info(name); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  uint64_t total_bytes() const;  // sum of tensor bytes

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> where_;
};

// A tensor to write: its bytes come from `data` (nbytes = numel x dtype size) or, when data is null, from
// `write`, which must put exactly that many bytes on the stream (for tensors that are produced one at a time,
// e.g. copied off a GPU).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::function<void(std::ostream&)> write;
};

// Writes a safetensors file atomically (temporary name, then rename). Tensors are laid out in the given
// order, the header is padded with spaces to a multiple of 8 bytes so the data section is aligned.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace ctm::io
