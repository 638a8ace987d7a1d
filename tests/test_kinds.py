"""The cells' descriptions: the Python one (pyx_gru._kinds) and the kernels'
(_kinds.pxi, read through _recurrent.kind_table()) agree, and every place
that lists the cells lists exactly the described kinds."""
import numpy as np
import pytest

import pyx_gru as pg
from pyx_gru import _kinds, _recurrent, _saving, _scan, bench, layers, reference
from pyx_gru.__main__ import CONFIGS as CHECK_CONFIGS
from conftest import CONFIGS

KINDS = list(_kinds.KINDS.values())


def test_every_kernel_kind_is_described_and_the_numbers_agree():
    table = _recurrent.kind_table()
    assert len(table) == _recurrent.N_KINDS
    assert {k.kernel for k in KINDS if not k.scan} == set(range(_recurrent.N_KINDS))
    for kind in KINDS:
        if kind.scan:
            continue
        row = table[kind.kernel]
        assert row["n_gates"] == len(kind.gates), kind.name
        assert 1 <= row["n_rec"] <= row["n_gates"], kind.name
        assert row["cell_state"] == (kind.state == ("h", "c")), kind.name
        assert row["reset_after"] == ("b_hg" in dict(kind.params)), kind.name
        assert kind.peephole <= row["peephole"], kind.name
        # P has the kernels' rows: one per gate block reading c_{t-1}, and o's
        assert row["peephole"] == (row["peephole_rows"] > 0), kind.name
        if kind.peephole:
            assert dict(kind.params)["P"] == row["peephole_rows"], kind.name
            # (the backward's float64 sums keep 3H for dP: _cells, acc)
            assert 2 <= row["peephole_rows"] <= min(3, row["n_gates"]), kind.name
            assert row["cell_state"], kind.name
        # a second product reads extra = r * h_prev; the reset after keeps n in it
        assert row["extra"] == (row["n_rec"] < row["n_gates"] or row["reset_after"]), kind.name


def test_every_scan_kind_is_described_and_has_no_recurrent_weights():
    """minGRU and minLSTM (pyx_gru._scan): one kind per kernel number, the
    gate count of the kernel's row, parameters W and b only."""
    table = _scan.kind_table()
    scan = [k for k in KINDS if k.scan]
    assert sorted(k.kernel for k in scan) == list(range(_scan.N_KINDS)) == list(range(len(table)))
    for kind in scan:
        assert table[kind.kernel]["n_gates"] == len(kind.gates), kind.name
        assert kind.gates[-1] == "g" and kind.state == ("h",) and not kind.params
        assert not (kind.extra or kind.reset_after or kind.peephole)
        assert set(kind.param_shapes(3, 4)) == {"W", "b"}


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_a_kind_describes_its_cells(kind):
    cell = kind.cell_class(3, 4, **kind.keywords)
    assert _kinds.of(cell) is kind
    assert cell._kind == kind.kernel
    assert cell.gates == kind.gates
    assert cell.param_shapes == kind.param_shapes(3, 4)
    assert set(cell.params) == set(kind.param_shapes(3, 4))
    for name, _ in kind.params:     # extra biases and peepholes start at zero
        assert not np.any(cell.params[name])
    ref = reference.from_cell(cell)
    assert _kinds.of(ref) is kind and type(ref).__name__ == kind.cls
    assert getattr(pg, kind.cls) is kind.cell_class
    assert callable(getattr(reference, f"{kind.step}_step_forward"))
    assert callable(getattr(reference, f"{kind.step}_step_backward"))
    assert _kinds.get(kind.name) is kind
    for alias in kind.aliases:
        assert _kinds.get(alias) is kind


def test_the_lists_of_cells_are_the_descriptions():
    assert list(layers.CELLS) == [k.name for k in KINDS]
    assert layers.CELL_ALIASES == {"simple_gru": "sgru", "gru_after": "gru", **{
        a: k.name for k in KINDS for a in k.aliases}}
    assert [label for label, _, _ in CHECK_CONFIGS] == [k.label for k in KINDS]
    assert list(CONFIGS) == [k.id for k in KINDS]
    assert list(bench.CELLS) == [k.id for k in KINDS if k.bench_label]
    assert set(_saving._CLASSES) == {k.cls for k in KINDS}
    names = [n for k in KINDS for n in (k.name, *k.aliases)]
    assert len(names) == len(set(names))
    assert len({k.label for k in KINDS}) == len(KINDS)
    assert len({(k.cls, k.form) for k in KINDS}) == len(KINDS)


def test_saving_reads_the_forms_from_the_descriptions():
    assert _saving._FORMS["GRU"] == {"reset": ("after", "before")}
    assert _saving._FORMS["LSTM"] == {"peephole": (False, True)}
    assert _saving._FORMS["CoupledLSTM"] == {"peephole": (False, True)}
    for kind in KINDS:
        assert _saving._shapes(kind.cls, 3, 4, _kinds.full_form(kind)) == kind.param_shapes(3, 4)


@pytest.mark.parametrize("kind", [k for k in KINDS if k.peephole], ids=lambda k: k.name)
def test_peepholes_of_another_shape_are_refused(kind):
    """P has its kind's rows (the LSTM's 3, the CIFG's 2): another shape is a
    ValueError that names P and the shape it must have, when assigned and
    when a pass reads it."""
    cell = kind.cell_class(3, 4, **kind.keywords)
    rows = dict(kind.params)["P"]
    for bad in ((rows + 1, 4), (rows - 1, 4), (rows, 5)):
        with pytest.raises(ValueError, match=rf"params\['P'\] must have shape \({rows}, 4\)"):
            cell.params = {**cell.params, "P": np.zeros(bad)}
        cell.params["P"] = np.zeros(bad)
        with pytest.raises(ValueError, match=rf"params\['P'\] must be .* shape \({rows}, 4\)"):
            cell.forward(np.zeros((2, 1, 3)))
        cell.params["P"] = np.zeros((rows, 4))
