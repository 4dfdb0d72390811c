// Helpers shared by the sources of the HDF5 layer (not part of io's interface: they need <hdf5.h>).
#pragma once

#include <hdf5.h>

#include <string>

#include "ctm/io/hdf5.hpp"

namespace ctm::io::h5 {

// The variable-length UTF-8 string type of datasets and attributes.
Id string_type(const std::string& what);

// A link-creation list that creates missing parent groups.
Id link_create_list(const std::string& what);

}  // namespace ctm::io::h5
