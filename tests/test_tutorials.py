"""Every tutorial runs as a plain script, and is a well-formed sphinx-gallery
example (the site's build runs them again and checks their figures: see
test_site.py).

Run as a script, a tutorial prints no warning, traceback or object repr, and
its figures (inspected when it calls ``plt.show()``) have no legend drawn over
a bar and no bar too small to see on a log scale without a label saying so."""
import ast
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

TUTORIALS = sorted((pathlib.Path(__file__).parent.parent / "tutorials").glob("plot_*.py"))

# The optional peers that pyx_gru functions called by a tutorial need, beyond
# the tutorial's own imports: experiments.compare runs its jobs through joblib
# and threadpoolctl, tasks.chorales reads music21's corpus.
PEERS_OF_CALLS = {
    "plot_cells_compared.py": ["joblib", "threadpoolctl"],
    "plot_chorales.py": ["joblib", "threadpoolctl", "music21"],
}


def missing_peers(script):
    """The optional packages (the 'docs' extra's) a tutorial needs that are not
    installed: matplotlib (the runner's), the top-level packages it imports
    other than pyx_gru, NumPy, SciPy and the standard library, and those of
    PEERS_OF_CALLS."""
    names = {"matplotlib", *PEERS_OF_CALLS.get(script.name, [])}
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    names -= {"pyx_gru", "numpy", "scipy", *sys.stdlib_module_names}
    return sorted(n for n in names if importlib.util.find_spec(n) is None)

# Runs a tutorial with plt.show() replaced by an inspection of every open
# figure, written as JSON to argv[2].
_RUNNER = r'''
import json, runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.container import BarContainer

script, report = sys.argv[1], sys.argv[2]


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def inspect(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    n_bars = 0
    for ax in fig.axes:
        bars = [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
        n_bars += len(bars)
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            hit = [p for p in bars if p.get_height() > 0
                   and overlaps(box, p.get_window_extent(renderer))]
            if hit:
                problems.append(f"{ax.get_title()!r}: the legend covers {len(hit)} bars")
        if ax.get_yscale() == "log":
            bottom = min(ax.get_ylim())
            for p in bars:
                if p.get_y() + p.get_height() <= bottom * 1.0001:
                    x0, x1 = p.get_x(), p.get_x() + p.get_width()
                    if not any(x0 <= t.xy[0] <= x1 if hasattr(t, "xy") else
                               x0 <= t.get_position()[0] <= x1 for t in ax.texts):
                        problems.append(f"{ax.get_title()!r}: a bar at x = {(x0 + x1) / 2:g} "
                                        "is too small to see and has no label")
    return {"bars": n_bars, "problems": problems}


def show(*args, **kwargs):
    with open(report, "w") as f:
        json.dump([inspect(plt.figure(n)) for n in plt.get_fignums()], f)


plt.show = show
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
'''

# What a tutorial must not print (stdout or stderr).
BAD_OUTPUT = re.compile(r"Warning\b|Traceback|object at 0x[0-9a-fA-F]+")


def test_there_are_tutorials():
    assert TUTORIALS


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    missing = missing_peers(script)
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)} (the 'docs' extra), not installed")
    work, report = tmp_path / "work", tmp_path / "figures.json"
    work.mkdir()
    # One BLAS thread, as the site's build gives them (docs/_ext/pyx_gru_gallery.py).
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(script), str(report)], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "a tutorial shows what it computed"
    assert list(work.iterdir()) == [], "a tutorial writes no files"
    bad = sorted({m.group(0) for m in BAD_OUTPUT.finditer(proc.stdout + proc.stderr)})
    assert not bad, (bad, proc.stderr[-3000:])
    figures = json.loads(report.read_text())
    assert figures, "the tutorial draws figures and shows them with plt.show()"
    problems = [f"figure {k + 1}: {p}" for k, f in enumerate(figures) for p in f["problems"]]
    print(f"{script.name}: {len(figures)} figures, {sum(f['bars'] for f in figures)} bars; "
          f"{len(problems)} problems")
    assert not problems, problems


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_is_a_gallery_example(script):
    text = script.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc, "an RST docstring opens the tutorial"
    title, underline = doc.splitlines()[:2]
    assert title.strip() and set(underline) == {"="} and len(underline) >= len(title)
    assert text.count("\n# %%\n") >= 2, "the tutorial is split into # %% cells"
    assert "plt.subplots(" in text or "plt.figure(" in text, "the tutorial draws figures"
