// Contrastive estimation (DESIGN.md §2 "calculate_ce_score"): how much more the model tuned on correct
// answers (positive) than the one tuned on incorrect answers (negative) believes in each token. Both are LoRA
// adapters on one copy of the base, switched per batch (a 70B base cannot be loaded twice).
#pragma once

#include <cstdint>
#include <vector>

#include "ctm/model/lora.hpp"
#include "ctm/model/transformer.hpp"

namespace ctm::train {

// Per token x_t of a sequence: ce_prob[t] = softmax(cd_logits[t−1])[x_t] with cd_logits = (1 + β)·logits_pos
// − β·logits_neg, and logp_pos[t], logp_neg[t] = log softmax of each model at t−1, at x_t. Index 0 (no
// context) holds 1, 0, 0 (DESIGN.md §5).
struct TokenScores {
  std::vector<float> ce_prob, logp_pos, logp_neg;
};

// Scores a batch of sequences (token ids, BOS included where the tokenizer adds it). The model's own adapters
// are replaced (it ends with `negative` attached); no gradient. The LM head runs on chunks of positions, so
// the [B, T, V] logits of the two models never exist at once.
std::vector<TokenScores> contrastive_scores(model::Transformer& model, const model::LoraAdapters& positive,
                                            const model::LoraAdapters& negative,
                                            const std::vector<std::vector<int64_t>>& seqs, double beta);

}  // namespace ctm::train
