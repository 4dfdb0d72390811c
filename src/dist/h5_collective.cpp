#include "ctm/dist/h5_collective.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <cassert>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ctm/core/atomic_file.hpp"
#include "ctm/core/error.hpp"

namespace ctm::dist {
namespace {

namespace h5 = io::h5;

// Runs fn on this rank, then every rank learns whether it worked on all of them; all throw the first failure
// (in rank order). Only for local work: a rank that fails inside a collective call cannot be waited for.
template <class Fn>
void agree(Comm& comm, Fn&& fn) {
  std::string error;
  try {
    fn();
  } catch (const std::exception& e) {
    error = *e.what() ? e.what() : "unknown error";
  }
  const std::vector<std::string> all = comm.allgather(error);
  for (int r = 0; r < comm.size(); ++r)
    if (!all[r].empty()) throw Error(r == comm.rank() ? all[r] : str("rank ", r, ": ", all[r]));
}

// Where `rank`'s part starts and the total, of per-rank counts counts[r * stride + col] (a prefix sum).
std::pair<int64_t, int64_t> start_total(const std::vector<int64_t>& counts, size_t stride, size_t col,
                                        int rank) {
  int64_t start = 0, total = 0;
  for (size_t r = 0; r * stride < counts.size(); ++r) {
    if (static_cast<int>(r) < rank) start += counts[r * stride + col];
    total += counts[r * stride + col];
  }
  return {start, total};
}

// This rank's first item and the total, of `mine` items per rank.
std::pair<int64_t, int64_t> rank_offset(Comm& comm, int64_t mine) {
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()), 0);
  counts[comm.rank()] = mine;
  comm.allreduce_sum(counts.data(), static_cast<int64_t>(counts.size()));
  return start_total(counts, 1, 0, comm.rank());
}

// Every rank's length of every column, rank-major: lengths[r * columns + c].
std::vector<int64_t> column_lengths(Comm& comm, const io::FlatFile& mine) {
  const size_t nc = mine.columns.size();
  std::vector<int64_t> lengths(static_cast<size_t>(comm.size()) * nc, 0);
  for (size_t c = 0; c < nc; ++c) lengths[comm.rank() * nc + c] = io::column_size(mine.columns[c].data);
  comm.allreduce_sum(lengths.data(), static_cast<int64_t>(lengths.size()));
  return lengths;
}

std::string column_signature(const io::FlatFile& f) {
  std::string s;
  for (const auto& c : f.columns) s += str(c.name, ":", c.data.index(), ":", c.offsets_of, ";");
  return s;
}

// ---- strings: serialised per rank, gathered on rank 0 --------------------------------------------------

void put_u64(std::string& out, uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

uint64_t get_u64(const std::string& in, size_t& pos) {
  uint64_t v = 0;
  assert(pos + sizeof v <= in.size());
  std::memcpy(&v, in.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

std::string pack_strings(const std::vector<io::StringColumn>& cols) {
  std::string out;
  for (const auto& c : cols) {
    put_u64(out, c.data.size());
    for (const auto& s : c.data) {
      put_u64(out, s.size());
      out += s;
    }
  }
  return out;
}

// Appends the packed columns of one rank to `cols` (same names and order on every rank).
void unpack_strings(const std::string& in, std::vector<io::StringColumn>& cols) {
  size_t pos = 0;
  for (auto& c : cols) {
    const uint64_t n = get_u64(in, pos);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t len = get_u64(in, pos);
      c.data.emplace_back(in, pos, len);
      pos += len;
    }
  }
}

// ---- the collective part -----------------------------------------------------------------------------

struct PropertyLists {
  h5::Id access, transfer;
};

PropertyLists mpio_lists(Comm& comm, const std::string& what) {
  h5::init();
  const int64_t handle = comm.mpi_fortran_handle();
  CTM_CHECK(handle >= 0, what, ": collective HDF5 needs an MPI communicator");
  const MPI_Comm mpi = MPI_Comm_f2c(static_cast<MPI_Fint>(handle));
  PropertyLists p;
  p.access = h5::Id(CTM_H5(H5Pcreate(H5P_FILE_ACCESS), what));
  CTM_H5(H5Pset_fapl_mpio(p.access.get(), mpi, MPI_INFO_NULL), what);
  p.transfer = h5::Id(CTM_H5(H5Pcreate(H5P_DATASET_XFER), what));
  // Filtered (compressed) datasets can only be written collectively in parallel HDF5.
  CTM_H5(H5Pset_dxpl_mpio(p.transfer.get(), H5FD_MPIO_COLLECTIVE), what);
  return p;
}

// Creates every numeric dataset and writes this rank's hyperslab of each.
void write_columns(Comm& comm, const std::string& tmp, const io::FlatFile& mine, const h5::Storage& storage) {
  const std::vector<int64_t> len = column_lengths(comm, mine);
  const size_t nc = mine.columns.size();
  PropertyLists lists = mpio_lists(comm, str("'", tmp, "'"));
  h5::File file = h5::File::create(tmp, lists.access.get());
  for (size_t c = 0; c < nc; ++c) {
    const io::Column& col = mine.columns[c];
    const auto [start, total] = start_total(len, nc, c, comm.rank());
    if (col.offsets_of.empty()) {
      io::write_column_part(file, col.name, col.data, total, start, storage, lists.transfer.get());
      continue;
    }
    size_t of = 0;
    while (mine.columns[of].name != col.offsets_of) ++of;  // check_flat_file made sure it exists
    const auto [of_start, of_total] = start_total(len, nc, of, comm.rank());
    const bool last = comm.rank() == comm.size() - 1;
    const io::ColumnData stored = io::stored_offsets(col, of_start, of_total, last);
    io::write_column_part(file, col.name, stored, total + 1, start, storage, lists.transfer.get());
  }
  file.close();
}

// Rank 0: the strings of every rank and rank 0's attributes into the closed file, then the rename.
void finish_on_rank0(const std::string& tmp, const std::string& path, const io::FlatFile& mine,
                     const std::vector<std::string>& packed) {
  std::vector<io::StringColumn> strings;
  for (const auto& s : mine.strings) strings.push_back({s.name, {}});
  for (const auto& p : packed) unpack_strings(p, strings);
  h5::File file = h5::File::open(tmp, /*write=*/true);
  io::write_strings(file, strings);
  io::write_attrs(file, mine.attrs);
  file.close();
  h5::rename_into_place(tmp, path);
}

}  // namespace

void write_flat_file(Comm& comm, const std::string& path, const io::FlatFile& mine,
                     const h5::Storage& storage) {
  if (comm.size() == 1 && comm.mpi_fortran_handle() < 0) return io::write_flat_file(path, mine, storage);
  std::string tmp;
  agree(comm, [&] {
    io::check_flat_file(mine);
    const std::string sig = column_signature(mine);
    for (const auto& s : comm.allgather(sig))
      CTM_CHECK(s == sig, "'", path, "': ranks disagree on the columns of the file");
    if (comm.rank() == 0) {
      make_dirs(std::filesystem::path(path).parent_path().string());
      tmp = h5::temp_path(path);
    }
  });
  tmp = comm.broadcast(tmp, 0);
  bool keep = false;
  struct RemoveTemp {  // rank 0 removes the temporary file unless it was renamed into place
    const std::string& tmp;
    bool& keep;
    bool owner;
    ~RemoveTemp() {
      if (owner && !keep) std::remove(tmp.c_str());
    }
  } remove_temp{tmp, keep, comm.rank() == 0};

  write_columns(comm, tmp, mine, storage);
  comm.barrier();  // every rank's data is in the file before rank 0 reopens it
  const std::vector<std::string> packed = comm.gather(pack_strings(mine.strings), 0);
  agree(comm, [&] {
    if (comm.rank() != 0) return;
    finish_on_rank0(tmp, path, mine, packed);
    keep = true;
  });
}

namespace {

// Flattens and checks this rank's items (flatten(index of its first item in the file)), then writes.
template <class Flatten>
void write_items(Comm& comm, const std::string& path, int64_t items, Flatten&& flatten,
                 const h5::Storage& storage) {
  const int64_t first = rank_offset(comm, items).first;
  io::FlatFile flat;
  agree(comm, [&] { flat = flatten(first); });
  write_flat_file(comm, path, flat, storage);
}

}  // namespace

void write_ce_scores(Comm& comm, const std::string& path, const io::CeScores& mine,
                     const h5::Storage& storage) {
  write_items(
      comm, path, static_cast<int64_t>(mine.pairs.size()),
      [&](int64_t first) { return io::ce_scores_flat(mine, first); }, storage);
}

void write_rollouts(Comm& comm, const std::string& path, const io::Rollouts& mine,
                    const h5::Storage& storage) {
  write_items(
      comm, path, static_cast<int64_t>(mine.trajectories.size()),
      [&](int64_t first) { return io::rollouts_flat(mine, first); }, storage);
}

}  // namespace ctm::dist
