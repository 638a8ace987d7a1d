"""The documentation's sources, without building them: every invariant is tied
to its property test, and the Sphinx helpers in docs/_ext do what they say."""
import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pyx_gru_docs():
    """docs/_ext/pyx_gru_docs.py, the site's Sphinx helpers; the tests of it
    skip without Sphinx (the 'docs' extra)."""
    for name in ("docutils", "sphinx"):
        pytest.importorskip(name, reason=f"{name} (the 'docs' extra) is not installed")
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import pyx_gru_docs

    return pyx_gru_docs


def _rst_files():
    return [p for p in (ROOT / "docs").rglob("*.rst")
            if not {"_build", "auto_tutorials", "generated"} & set(p.parts)]


def test_every_property_test_is_shown_on_a_page():
    tree = ast.parse((ROOT / "tests" / "test_properties.py").read_text())
    tests = {node.name for node in tree.body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    cited = set()
    for path in _rst_files():
        text = path.read_text()
        if "test_properties.py" in text:
            cited |= set(re.findall(r":pyobject:\s+(test_\w+)", text))
    assert tests, "no property tests found"
    assert tests - cited == set(), f"property tests no page shows: {sorted(tests - cited)}"
    assert cited - tests == set(), f"pages show tests that do not exist: {sorted(cited - tests)}"


def test_every_shown_test_has_its_label():
    # :ref:`test_name` works only if the page puts the label before the listing.
    for path in _rst_files():
        text = path.read_text()
        for name in re.findall(r":pyobject:\s+(test_\w+)", text):
            assert f".. _{name}:" in text, f"{path.name}: no label for {name}"


README = """intro

Full run, 2026-11-22, 2 threads, a `2-core` machine.
Median ms of one call.

| cell | B, D, H | speed-up |
|---|---|---|
| RNN | 1, 32, 32 | 37.41× |
| GRU `after` | 16, 64, 64 |  |

What this shows.

Peers, same run.

| cell | pyx_gru | JAX |
|---|---|---|
| LSTM | 0.059 | 0.242 |
"""


def test_readme_benchmark_becomes_a_list_table(pyx_gru_docs):
    lines = pyx_gru_docs.readme_benchmark_rst(README)
    assert lines[0] == "Full run, 2026-11-22, 2 threads, a ``2-core`` machine. Median ms of one call."
    assert ".. list-table::" in lines and "   :header-rows: 1" in lines
    rows = [line for line in lines if line.startswith("   * - ")]
    assert rows == ["   * - cell", "   * - RNN", "   * - GRU ``after``"]
    assert "     - 37.41×" in lines
    assert "     -  " in lines  # an empty cell stays a cell
    assert not any("What this shows" in line for line in lines)


def test_readme_benchmark_takes_the_paragraph_it_is_given(pyx_gru_docs):
    lines = pyx_gru_docs.readme_benchmark_rst(README, "Peers,")
    assert lines[0] == "Peers, same run."
    assert [line for line in lines if line.startswith("   * - ")] == ["   * - cell", "   * - LSTM"]
    assert "     - 0.242" in lines


def test_readme_benchmark_reads_the_real_readme(pyx_gru_docs):
    lines = pyx_gru_docs.readme_benchmark_rst((ROOT / "README.md").read_text(encoding="utf-8"))
    assert lines[0].startswith("Full run,")
    assert sum(line.startswith("   * - ") for line in lines) > 10
    peers = pyx_gru_docs.readme_benchmark_rst((ROOT / "README.md").read_text(encoding="utf-8"), "Peers,")
    assert "ONNX Runtime" in " ".join(peers)
    assert sum(line.startswith("   * - ") for line in peers) > 10


@pytest.mark.parametrize("text, message", [
    ("no table here\n", "no paragraph starting 'Full run,'"),
    ("Full run, today.\n\nno table\n", "no well-formed table"),
    ("Full run, today.\n\n| a | b |\n|---|---|\n| 1 |\n", "no well-formed table"),
])
def test_readme_benchmark_fails_loudly(text, message, pyx_gru_docs):
    from sphinx.errors import ExtensionError

    with pytest.raises(ExtensionError, match=message):
        pyx_gru_docs.readme_benchmark_rst(text)


def test_tutorials_are_sorted_in_reading_order(pyx_gru_docs):
    key = pyx_gru_docs.TutorialOrder("tutorials")
    names = ["plot_zzz_new.py", "plot_check_gradients.py", "plot_reset_before_after.py",
             "plot_chorales.py", "plot_gates_at_work.py", "plot_torch_interop.py",
             "plot_aaa_new.py", "plot_cells_compared.py", "plot_gradient_flow.py",
             "plot_rnn_to_gru.py"]
    assert sorted(names, key=key) == ["plot_rnn_to_gru.py", "plot_gradient_flow.py",
                                      "plot_gates_at_work.py", "plot_reset_before_after.py",
                                      "plot_cells_compared.py", "plot_chorales.py",
                                      "plot_torch_interop.py", "plot_check_gradients.py",
                                      "plot_aaa_new.py", "plot_zzz_new.py"]


def test_every_tutorial_has_a_place_in_the_order(pyx_gru_docs):
    on_disk = sorted(p.name for p in (ROOT / "tutorials").glob("plot_*.py"))
    assert sorted(pyx_gru_docs.TUTORIALS) == on_disk


def test_reexports_name_the_module_that_defines_a_name(pyx_gru_docs):
    """A function by its __module__, data by the source that assigns it:
    experiments re-exports the task registry and the gradient-flow analysis."""
    found = pyx_gru_docs.reexports(pyx_gru_docs.api_modules())
    assert ("Model", "pyx_gru.layers") in found["pyx_gru"]
    assert {("TASKS", "pyx_gru.tasks"), ("make_task", "pyx_gru.tasks"),
            ("flow_curve", "pyx_gru.diagnostics")} <= set(found["pyx_gru.experiments"])
    assert "pyx_gru.tasks" not in found and "pyx_gru.layers" not in found


def test_the_site_shows_the_licence():
    """The licence of LICENSE and pyproject.toml, on the front page and in
    every page's footer."""
    assert "BSD 3-Clause licence" in (ROOT / "docs" / "index.rst").read_text()
    assert "BSD 3-Clause" in (ROOT / "docs" / "conf.py").read_text().split("copyright =")[1].split("\n")[0]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
