// The score files written collectively with parallel HDF5 (MPI-IO), not gathered onto rank 0. Each rank holds
// a contiguous block of the items, in rank order (rank 0 the first ones, e.g. block_range(n, rank, size));
// a rank may hold none. The file is the one io's serial writer makes from all items, value for value,
// whatever the rank count.
//
// How (parallel HDF5 1.10 writes filtered datasets only collectively and variable-length strings not at all):
//  1. every rank flattens and checks its items; all ranks agree on success (the first error is thrown on
//     every rank); rank 0 picks the temporary name beside the target and broadcasts it;
//  2. one allreduce gives every rank every rank's length of every numeric column: global sizes and each
//     rank's offset (a prefix sum over ranks); CSR offsets are shifted by that rank's offset into the array
//     they index, and the last rank appends the total;
//  3. all ranks create the file with the MPI-IO driver and every numeric dataset (same chunking and filters
//     as the serial writer), then write their hyperslab with a collective transfer (ranks without items
//     select nothing but still take part), and close the file;
//  4. the strings travel to rank 0 (gather), which reopens the file with the serial driver, writes the string
//     datasets and the root attributes, closes it and renames it into place; the other ranks learn whether
//     that worked and throw the same error if it did not.
// A failure inside step 3 on one rank is not recoverable by the others (they wait in a collective call): the
// error propagates and ctm's main aborts MPI; the final name never holds a partial file (the temporary may
// stay behind, named <path>.tmp.<pid of rank 0>).
#pragma once

#include <string>

#include "ctm/dist/comm.hpp"
#include "ctm/io/ce_scores.hpp"
#include "ctm/io/flat_file.hpp"
#include "ctm/io/rollouts.hpp"

namespace ctm::dist {

// `mine`: this rank's part of every column (offsets columns counting from 0 at this part, io/flat_file.hpp)
// and strings; attributes are taken from rank 0. Every rank calls it.
void write_flat_file(Comm& comm, const std::string& path, const io::FlatFile& mine,
                     const io::h5::Storage& storage = {});

// `mine.pairs` / `mine.trajectories`: this rank's block of items; the rest of `mine` is taken from rank 0.
void write_ce_scores(Comm& comm, const std::string& path, const io::CeScores& mine,
                     const io::h5::Storage& storage = {});
void write_rollouts(Comm& comm, const std::string& path, const io::Rollouts& mine,
                    const io::h5::Storage& storage = {});

}  // namespace ctm::dist
