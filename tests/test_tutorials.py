"""Every tutorial runs as a plain script, and is a well-formed sphinx-gallery
example (the site's build runs them again and checks their figures: see
test_site.py)."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

TUTORIALS = sorted((pathlib.Path(__file__).parent.parent / "tutorials").glob("plot_*.py"))


def test_there_are_tutorials():
    assert TUTORIALS


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "a tutorial shows what it computed"
    assert list(tmp_path.iterdir()) == [], "a tutorial writes no files"


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_is_a_gallery_example(script):
    text = script.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert doc, "an RST docstring opens the tutorial"
    title, underline = doc.splitlines()[:2]
    assert title.strip() and set(underline) == {"="} and len(underline) >= len(title)
    assert text.count("\n# %%\n") >= 2, "the tutorial is split into # %% cells"
    assert "plt.subplots(" in text or "plt.figure(" in text, "the tutorial draws figures"
