// The causal language-model loss of a Transformer on padded batches, and the trainable tensors of a model.
#pragma once

#include <vector>

#include "ctm/model/transformer.hpp"
#include "ctm/train/batching.hpp"
#include "ctm/train/optim.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::train {

// Sum of -log p(target) over the batch's target positions (LossTerms.count = their number). Only the hidden
// states of target positions go through the LM head, so masked prompt tokens cost no head computation.
LossTerms causal_lm_loss(model::Transformer& model, const LmBatch& batch);

// A LossFn over `examples` (kept by reference): collates the requested indices with pad_id and returns
// causal_lm_loss, switching the model's training mode (dropout) as the trainer asks.
LossFn lm_loss_fn(model::Transformer& model, const std::vector<LmExample>& examples, int32_t pad_id);

// Lengths of examples, for Split::lengths.
std::vector<int64_t> example_lengths(const std::vector<LmExample>& examples);

// Every base weight for full-parameter training (requires_grad switched on): weight decay on the projection
// and embedding matrices, none on the norms (as Hugging Face's Trainer, which exempts 1-D weights and
// biases).
std::vector<TrainableParam> full_parameters(model::Transformer& model);

// The LoRA A/B matrices (PEFT names), all with weight decay.
std::vector<TrainableParam> lora_parameters(model::Transformer& model);

}  // namespace ctm::train
