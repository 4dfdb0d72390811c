// The fixture model and tokenizer shared by the engine tests (random weights, 256-byte BPE tokenizer).
#pragma once

#include <memory>
#include <string>

#include "ctm/model/loader.hpp"
#include "ctm/text/tokenizer.hpp"

namespace ctm::engine::test {

inline std::string tiny_model_dir() {
  return std::string(CTM_TEST_FIXTURES) + "/model/llama3-tiny-random";
}

struct TinyModel {
  std::shared_ptr<model::Transformer> model =
      model::load_model(tiny_model_dir(), torch::kCPU, torch::kFloat32);
  text::Tokenizer tokenizer = text::Tokenizer::load(tiny_model_dir());
};

inline TinyModel& tiny() {
  static TinyModel m;
  return m;
}

}  // namespace ctm::engine::test
