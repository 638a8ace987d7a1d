"""Hypothesis strategies shared by the property tests.

Shapes are small (T <= 6, B <= 4, D <= 4, H <= 5) and every number is drawn
from a bounded range: weights in [-0.6, 0.6], inputs and states in [-1, 1], so
a pre-activation stays within about +-7 and the gates are not saturated (a
property that holds only because every gate is 0 or 1 proves nothing). The
``saturated`` flag widens the weights to [-30, 30] for the few properties that
must also hold at the extremes.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from helpers import CONFIGS

MAX_T, MAX_B, MAX_D, MAX_H = 6, 4, 4, 5


def floats(bound):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False, width=64)


def array(shape, bound):
    return arrays(np.float64, shape, elements=floats(bound))


def take_rows(state, idx):
    """Batch rows ``idx`` of a state, an array (B, H) or a tuple of them."""
    if isinstance(state, tuple):
        return tuple(np.asarray(s)[idx] for s in state)
    return np.asarray(state)[idx]


class Run(NamedTuple):
    """What ``Problem.run`` returns: a forward pass, then a backward pass."""
    y: np.ndarray       # (T, B, H)
    state: object       # the final state, (B, H) or, for the LSTM, (h, c)
    cache: object
    dx: np.ndarray      # (T, B, D)
    dstate0: object     # dL/dstate0, shaped like the state
    dparams: dict       # dL/dparams, by parameter name

    def rows(self, idx):
        """This run seen through batch rows ``idx`` (a subset or a permutation):
        y, the state, dx and dstate0 restricted to them. The cache and the
        parameter gradients (sums over the whole batch) are kept as they are."""
        return self._replace(y=self.y[:, idx], state=take_rows(self.state, idx),
                             dx=self.dx[:, idx], dstate0=take_rows(self.dstate0, idx))


@dataclass
class Problem:
    """A cell with drawn parameters and everything a forward and backward pass need."""
    cell: object
    x: np.ndarray
    state0: object
    dy: np.ndarray
    dstate: object
    lengths: object = None

    @property
    def T(self):
        return self.x.shape[0]

    @property
    def B(self):
        return self.x.shape[1]

    def run(self, cell=None, gates=None, **overrides):
        """forward then backward, on this problem's data with ``overrides``
        (x, state0, lengths, dy, dstate) and ``gates`` pinned; a ``Run``."""
        cell = cell or self.cell
        args = dict(x=self.x, state0=self.state0, lengths=self.lengths, dy=self.dy,
                    dstate=self.dstate)
        args.update(overrides)
        y, state, cache = cell.forward(args["x"], args["state0"], args["lengths"], gates=gates)
        dx, dstate0, dparams = cell.backward(cache, args["dy"], args["dstate"])
        return Run(y, state, cache, dx, dstate0, dparams)


def state(lstm, B, H, bound=1.0):
    if lstm:
        return st.tuples(array((B, H), bound), array((B, H), 2 * bound))
    return array((B, H), bound)


@st.composite
def problems(draw, config, dtype, *, min_T=1, lengths=False, saturated=False,
             max_T=MAX_T, max_B=MAX_B):
    """A random Problem for the cell configuration ``config`` (a key of
    helpers.CONFIGS) in ``dtype``."""
    cls, kw = CONFIGS[config]
    T = draw(st.integers(min_T, max_T))
    B = draw(st.integers(1, max_B))
    D = draw(st.integers(1, MAX_D))
    H = draw(st.integers(1, MAX_H))
    cell = cls(D, H, dtype=dtype, seed=0, **kw)
    bound = draw(st.sampled_from([0.6, 30.0])) if saturated else 0.6
    cell.params = {k: draw(array(v.shape, bound)) for k, v in cell.params.items()}
    x = draw(array((T, B, D), 1.0))
    lstm = cell._lstm
    state0 = draw(state(lstm, B, H))
    dy = draw(array((T, B, H), 1.0))
    dstate = draw(state(lstm, B, H))
    lens = None
    if lengths:
        lens = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    return Problem(cell, x, state0, dy, dstate, lens)


# One of the six configurations and one of the two dtypes.
configs = st.sampled_from(sorted(CONFIGS))
dtypes = st.sampled_from([np.float32, np.float64])
scalars = floats(2.0)
