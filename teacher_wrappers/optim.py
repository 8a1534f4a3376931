"""`Adam`: torch.optim.Adam, without importing torch._dynamo.

torch.optim guards its methods for torch.compile (`torch._disable_dynamo`, and a graph break around every step),
and these guards import torch._dynamo at the first call: 1.2 s of a run's start-up and some 0.4 s more when the
process exits, for a student that is never compiled. This Adam calls the same methods under them (step with
gradients off, as the guard sets them), so it makes the same updates and the same state dicts. Where a later
torch version changes what is underneath, it falls back to torch's own methods.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


def unguarded(method):
    """What torch's guard wraps (functools.wraps records it), or the method itself."""
    return getattr(method, "__wrapped__", method)


_STEP, _ADD = unguarded(torch.optim.Adam.step), unguarded(Optimizer.add_param_group)
_ZERO, _STATE, _LOAD = unguarded(Optimizer.zero_grad), unguarded(Optimizer.state_dict), unguarded(Optimizer.load_state_dict)


class Adam(torch.optim.Adam):
    """torch.optim.Adam (same arguments, updates and state dicts) that never imports torch._dynamo: not for
    torch.compile."""

    def step(self, closure=None):
        with torch.no_grad():  # what the guard does (the step is not differentiable)
            return _STEP(self, closure)

    def add_param_group(self, param_group: dict) -> None:
        _ADD(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _ZERO(self, set_to_none)

    def state_dict(self) -> dict:
        return _STATE(self)

    def load_state_dict(self, state_dict: dict) -> None:
        _LOAD(self, state_dict)
