"""What a linear probe fit returns, whichever solver fitted it (``probes.linear``, ``probes.torch_linear``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProbeFit:
    """A fitted probe and how it was chosen.

    Attributes:
        model: the probe at the chosen C; offers ``predict`` and ``predict_proba`` on (N, D) features.
        c: the chosen inverse regularisation strength.
        val_accuracy: validation accuracy at that C.
        val_accuracy_by_c: C -> validation accuracy, for every C of the sweep.
        float32_matmul: how the torch probe ran its float32 matmuls (``ieee``, or ``onednn-bf16`` where that
            mode passed its accuracy check); None for scikit-learn.
    """

    model: object
    c: float
    val_accuracy: float
    val_accuracy_by_c: dict[float, float]
    float32_matmul: str | None = None
