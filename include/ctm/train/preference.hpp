// The DPO family of losses (DESIGN.md §2 "cDPO"): DPO, RPO (DPO + the chosen response's NLL) and cDPO, whose
// rejected tokens carry weights w_t = 1 - ce_prob(r_t) from contrastive estimation, in the two forms ctm
// offers:
//   sequence (the paper's equation): chosen = Σ_t (log π(c_t) − log π_ref(c_t)) over the response (+ EOS),
//     rejected = Σ_t w_t (log π(r_t) − log π_ref(r_t)), loss = −log σ(β (chosen − rejected));
//   token (what the release's code computes, which produced the published numbers): Δc_j, Δr_j the per-token
//     differences at absolute position j of the padded pair (prompt and padding give 0),
//     loss = mean over all positions j of the batch of −log σ(β (Δc_j − w_j Δr_j)).
// With w = 1 the sequence form is plain DPO. The reference policy is the model with its LoRA switched off.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ctm/model/transformer.hpp"
#include "ctm/train/trainer.hpp"

namespace ctm::train {

enum class PreferenceLoss { DPO, RPO, CDPO };
enum class CdpoForm { Sequence, Token };
PreferenceLoss parse_preference_loss(const std::string& name);  // "dpo" | "rpo" | "cdpo"
CdpoForm parse_cdpo_form(const std::string& name);              // "sequence" | "token"
const char* preference_loss_name(PreferenceLoss loss);
const char* cdpo_form_name(CdpoForm form);

struct PreferenceOptions {
  PreferenceLoss loss = PreferenceLoss::CDPO;
  CdpoForm form = CdpoForm::Sequence;  // cDPO only; DPO and RPO are sequence-level
  double beta = 0.1;
  double rpo_alpha = 1.0;  // RPO: weight of the chosen response's mean NLL
};

// One side (chosen or rejected) of B pairs at the absolute positions j of the padded pair: log π(token_j |
// tokens_<j) of the policy (with autograd) and of the reference, and a 0/1 mask of the tokens in the loss
// (the response and the EOS after it). Entries outside the mask are ignored.
struct SideLogps {
  torch::Tensor policy_BT, reference_BT, mask_BT;
};

// The loss summed over the B pairs (LossTerms.count = B) and TRL's metrics, summed over pairs:
// rewards/chosen and rewards/rejected (β × the unweighted log-ratio sums), rewards/accuracies (chosen >
// rejected), rewards/margins, and nll (the chosen response's mean NLL; in the loss for RPO only). weights_BT:
// w_j of the rejected tokens (1 where no weight applies); used by cDPO only.
LossTerms preference_loss(const SideLogps& chosen, const SideLogps& rejected, const torch::Tensor& weights_BT,
                          const PreferenceOptions& options);

// A preference pair as token sequences: BOS + prompt + response + EOS for each side, where each side's
// response (and EOS) starts at *_start. rejected_weights holds w for each token of `rejected` (empty: all 1).
struct PreferencePair {
  std::vector<int32_t> chosen, rejected;
  int64_t chosen_start = 0, rejected_start = 0;
  std::vector<float> rejected_weights;
};

// log π_ref(token_j | tokens_<j) for j >= 1 (index 0 holds 0) of both sides of every pair, with the model's
// LoRA switched off, in batches of about batch_tokens padded tokens. Computed once before training (the
// reference never changes). With a collective, rank r forwards batches r, r + R, ... (every rank the same
// number of forwards, as the trainer, for a sharded model) and the ranks' rows are then summed into every
// rank's result: the values are those of one rank, bit for bit.
struct ReferenceLogps {
  std::vector<std::vector<float>> chosen, rejected;
};
ReferenceLogps reference_logps(model::Transformer& model, const std::vector<PreferencePair>& pairs,
                               Collective* collective = nullptr, int64_t batch_tokens = 8192);

// A LossFn over `pairs` (kept by reference, as `reference`): forwards both sides of the requested pairs as
// one right-padded batch through the model (training mode as the trainer asks) and returns preference_loss.
LossFn preference_loss_fn(model::Transformer& model, const std::vector<PreferencePair>& pairs,
                          const ReferenceLogps& reference, const PreferenceOptions& options, int32_t pad_id);

// Lengths for Split::lengths (the longer side of each pair).
std::vector<int64_t> pair_lengths(const std::vector<PreferencePair>& pairs);

}  // namespace ctm::train
