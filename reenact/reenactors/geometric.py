"""The geometric mode's home: no learned weights; the photo's own pixels move along the 3DMM.

Render contract :data:`reenact.reenactors.contract.GEOMETRIC` (the renderer:
:class:`reenact.geometric.ReenactorRenderer`; the model: :class:`reenact.reenactor.
GeometricReenactor`, its tunables :class:`reenact.reenactor.ReenactorConfig`).
"""

from __future__ import annotations

import torch

from reenact.reenactor import GeometricReenactor, ReenactorConfig
from reenact.reenactors import GEOMETRIC_MODE

MODE = GEOMETRIC_MODE


def build(config: ReenactorConfig | None = None) -> torch.jit.ScriptModule:
    """The served geometric reenactor (scripted: its moving box is read off the data)."""
    return torch.jit.script(GeometricReenactor(config).eval())
