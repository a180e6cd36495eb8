"""An algorithm of your own: `algorithm: momentum_sign_es:MomentumSignES`.

ES with centered ranks whose step is the sign of a momentum of the gradient estimate
(signSGD with momentum): theta += step_size * sign(m). `m` is per-parameter state: mpi_es cuts
it into the ranks' blocks, gathers it and checkpoints it (as /optimizer/m) without knowing
what it is, so runs resume exactly and give the same bits for any rank count.

    cd examples && mpiexec -n 2 python -m mpi_es custom_algorithm.yaml
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from mpi_es.algorithms import Algorithm
from mpi_es.core.gradient import es_gradient
from mpi_es.core.optimizers import StateLayout
from mpi_es.core.shaping import centered_ranks
from mpi_es.fields import Section

LAYOUT = StateLayout("momentum_sign", arrays=("m",), scalars={"t": int})


class MomentumSignSettings(Section):
    """The `momentum_sign_es:` section of the config."""
    step_size: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)


class MomentumSignES(Algorithm):
    name = "momentum_sign_es"
    Settings = MomentumSignSettings
    state_layouts = (LAYOUT,)
    log_columns = ("MomentumNorm",)

    def layout(self) -> StateLayout:
        return LAYOUT

    def update_block(self, returns, data, theta_block, noise, state):
        settings = getattr(self.cfg, self.section_key())
        g = es_gradient(centered_ranks(returns), data.noise_indices, noise,
                        theta_block.size)
        m = state.arrays["m"] = (np.float32(settings.momentum) * state.arrays["m"]
                                 + np.float32(1 - settings.momentum) * g).astype(np.float32)
        state.scalars["t"] += 1
        step = np.float32(settings.step_size) * np.sign(m)
        return (theta_block + step).astype(np.float32), {"MomentumNorm": float(np.abs(m).sum())}
