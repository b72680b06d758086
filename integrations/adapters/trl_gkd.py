"""TRL 1.16.0's GKD divergence (trl.experimental.gkd, GKDTrainer.generalized_jsd_loss)
behind the suite's name generalized_jsd.

    RLSD_IMPL=integrations.adapters.trl_gkd python -m pytest tests/test_conformance.py

Only in the environment integrations/run_oracle.sh builds. The call converts the suite's
(B, T) mask to GKD's labels (-100 on padding) and GKD's unreduced output (valid tokens x
vocabulary) back to (B, T); the math is TRL's own. Conventions: docs/METHODS.md,
"Generalized JSD and KL".
"""

import torch
from trl.experimental.gkd import GKDTrainer

CONFORMANCE_SKIP_FLAGS = {
    # generalized_jsd_loss checks neither beta, the temperature nor the two vocabularies:
    # mismatched logits end in torch's RuntimeError, not ValueError.
    "InvalidInput",
}


def generalized_jsd(student_logits, teacher_logits, mask, *, beta=0.5, temperature=1.0):
    """Per-token generalized JSD: reduction="none" keeps the per-vocabulary terms of the
    valid tokens, summed here over the vocabulary (what reduction="sum" sums)."""
    valid = mask.bool()
    labels = torch.where(valid, 0, -100)                       # GKD's "ignore" label
    terms = GKDTrainer.generalized_jsd_loss(student_logits, teacher_logits, labels=labels,
                                            beta=beta, temperature=temperature, reduction="none")
    out = torch.zeros(mask.shape, dtype=terms.dtype)
    out[valid] = terms.sum(dim=-1)
    return out
