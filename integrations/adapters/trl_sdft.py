"""TRL 1.16.0's SDFT divergence (trl.experimental.sdft, full_logits mode) behind the
suite's name generalized_jsd: compute_full_logit_self_distillation_loss.

    RLSD_IMPL=integrations.adapters.trl_sdft python -m pytest tests/test_conformance.py

Only in the environment integrations/run_oracle.sh builds. The conversion is what
SDFTTrainer does around the call: its logits come divided by args.temperature
(_get_completion_logits returns logits / self.temperature), the suite's beta is its
distillation_alpha, and its per-token loss is multiplied by the loss mask. The math is
TRL's own. Conventions: docs/METHODS.md, "Generalized JSD and KL".
"""

from trl.experimental.sdft.loss_utils import compute_full_logit_self_distillation_loss

CONFORMANCE_SKIP_FLAGS = {
    # compute_divergence checks neither alpha nor the two vocabularies: mismatched logits
    # end in torch's RuntimeError, not ValueError.
    "InvalidInput",
}


def generalized_jsd(student_logits, teacher_logits, mask, *, beta=0.5, temperature=1.0):
    per_token = compute_full_logit_self_distillation_loss(
        student_logits / temperature, teacher_logits / temperature, distillation_alpha=beta)
    return per_token * mask                                    # as SDFTTrainer masks it
