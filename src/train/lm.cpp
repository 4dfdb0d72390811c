#include "ctm/train/lm.hpp"

#include "ctm/core/error.hpp"

namespace ctm::train {

LossTerms causal_lm_loss(model::Transformer& model, const LmBatch& batch) {
  const auto device = model.device();
  const auto ids_BT = batch.ids_BT.to(device), positions_BT = batch.positions_BT.to(device);
  const auto targets_BT = batch.targets_BT.to(device);
  model::CausalAttention attn;  // right padding: a real token never reads a pad under the causal mask
  const auto hidden_BTD = model.forward_hidden(ids_BT, positions_BT, attn);
  const auto in_loss_BT = targets_BT.ne(kIgnoreIndex);
  const auto hidden_ND = hidden_BTD.index({in_loss_BT});
  const auto targets_N = targets_BT.index({in_loss_BT});
  LossTerms terms;
  terms.sum = summed_nll(model.logits(hidden_ND), targets_N);
  terms.count = static_cast<double>(targets_N.size(0));
  return terms;
}

LossFn lm_loss_fn(model::Transformer& model, const std::vector<LmExample>& examples, int32_t pad_id) {
  return [&model, &examples, pad_id](const std::vector<int64_t>& ids, bool training) {
    model.set_training(training);
    std::vector<const LmExample*> batch;
    batch.reserve(ids.size());
    for (auto i : ids) batch.push_back(&examples.at(static_cast<size_t>(i)));
    return causal_lm_loss(model, collate_lm(batch, pad_id));
  };
}

std::vector<int64_t> example_lengths(const std::vector<LmExample>& examples) {
  std::vector<int64_t> lengths;
  lengths.reserve(examples.size());
  for (const auto& ex : examples) lengths.push_back(static_cast<int64_t>(ex.tokens.size()));
  return lengths;
}

std::vector<TrainableParam> full_parameters(model::Transformer& model) {
  model.set_requires_grad(true);
  return default_decay_groups(model.named_parameters());
}

std::vector<TrainableParam> lora_parameters(model::Transformer& model) {
  const auto named = model.named_lora_parameters();
  CTM_CHECK(!named.empty(), "the model has no LoRA adapters to train");
  std::vector<TrainableParam> out;
  for (const auto& [name, t] : named) {
    t.requires_grad_(true);
    out.push_back({name, t, true});
  }
  return out;
}

}  // namespace ctm::train
