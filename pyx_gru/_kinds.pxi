# The cell kinds of the kernels, described once (included by _recurrent.pyx).
#
# A kind's number selects its pointwise step (the one dispatch in
# _pointwise.pxi); everything else the driver and the shape contract need
# to know about a kind is its row of _KINDS. The Python side describes the
# same kinds in pyx_gru/_kinds.py (names, gate names, parameters) and reads
# these rows through kind_table() (tests/test_kinds.py checks the two agree).

# Numbered in order (a new kind goes before _N_KINDS; the numbers of the
# others never change: they are the kernels' interface).
cdef enum:
    _RNN = 0
    _SIMPLE_GRU
    _GRU_AFTER
    _GRU_BEFORE
    _LSTM
    _MGU_AFTER
    _MGU_BEFORE
    _CIFG
    _N_KINDS

RNN = _RNN
SIMPLE_GRU = _SIMPLE_GRU
GRU_AFTER = _GRU_AFTER
GRU_BEFORE = _GRU_BEFORE
LSTM = _LSTM
MGU_AFTER = _MGU_AFTER
MGU_BEFORE = _MGU_BEFORE
CIFG = _CIFG
N_KINDS = _N_KINDS


ctypedef struct _Kind:
    # G: gate blocks of H columns in W, U, b and the cache's gates
    Py_ssize_t n_gates
    # the first n_rec blocks take h_{t-1} @ U in the step's one product; the
    # others (a reset gate before the product) take extra @ U, a second
    # product inside the step, on extra = r * h_{t-1}
    Py_ssize_t n_rec
    # a second state part, the cell state c (cs, c_last, dc)
    bint cell_state
    # an (H,) array per step and row in the cache (`extra`): the candidate's
    # recurrent part n_t = h_{t-1} U_g + b_hg (reset after) or r_t * h_{t-1}
    # (reset before)
    bint extra
    # the reset gate scales the candidate's recurrent part after the
    # product: the parameter b_hg (H,), and the candidate's input-side
    # gradient dxg kept apart from its recurrent side (the last gate block)
    bint reset_after
    # may have diagonal peepholes (the flag `peephole` of a pass): the rows
    # of P (R, H), 0 for none. Rows 0..R-2 belong to the first R-1 gate
    # blocks, which read c_{t-1}; row R-1 to the last gate block (o), which
    # reads c_t. The LSTM's P is [p_i; p_f; p_o] (3, H), the CIFG's
    # [p_f; p_o] (2, H) (its input gate is 1 - f: no row of its own). R <= 3:
    # the backward's float64 sums (acc) keep 3H for dP.
    Py_ssize_t peephole


cdef _Kind _KINDS[_N_KINDS]
#                      G  n_rec cell_state extra  reset_after peephole (rows of P)
_KINDS[_RNN] = _Kind(1, 1, False, False, False, 0)
_KINDS[_SIMPLE_GRU] = _Kind(2, 2, False, False, False, 0)
_KINDS[_GRU_AFTER] = _Kind(3, 3, False, True, True, 0)
_KINDS[_GRU_BEFORE] = _Kind(3, 2, False, True, False, 0)
_KINDS[_LSTM] = _Kind(4, 4, True, False, False, 3)
_KINDS[_MGU_AFTER] = _Kind(2, 2, False, True, True, 0)
_KINDS[_MGU_BEFORE] = _Kind(2, 1, False, True, False, 0)
_KINDS[_CIFG] = _Kind(3, 3, True, False, False, 2)


def kind_table():
    """The kernels' description of every kind, by number: a tuple of dicts
    with ``n_gates``, ``n_rec``, ``cell_state``, ``extra``, ``reset_after``,
    ``peephole`` and ``peephole_rows`` (the rows of P, 0 for none; see
    _kinds.pxi)."""
    return tuple(
        {"n_gates": _KINDS[k].n_gates, "n_rec": _KINDS[k].n_rec,
         "cell_state": bool(_KINDS[k].cell_state), "extra": bool(_KINDS[k].extra),
         "reset_after": bool(_KINDS[k].reset_after), "peephole": bool(_KINDS[k].peephole),
         "peephole_rows": _KINDS[k].peephole}
        for k in range(_N_KINDS)
    )
