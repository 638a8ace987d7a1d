"""The linters of pyproject.toml pass: ruff on the Python files, cython-lint
on the Cython ones (their settings: ``[tool.ruff]`` and ``[tool.cython-lint]``)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CYTHON = sorted(str(p) for pattern in ("*.pyx", "*.pxd", "*.pxi")
                for p in (ROOT / "pyx_gru").glob(pattern))


def _run(args):
    # cython-lint runs pycodestyle by name: the interpreter's bin directory first
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    args = args if args[0] == "-c" else ["-m", *args]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_ruff():
    pytest.importorskip("ruff", reason="ruff (the 'test' extra) is not installed")
    proc = _run(["ruff", "check", "--no-cache", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cython_lint():
    pytest.importorskip("cython_lint", reason="cython-lint (the 'test' extra) is not installed")
    pytest.importorskip("pycodestyle", reason="pycodestyle (which cython-lint runs) is not installed")
    assert CYTHON, "the kernels' sources"
    proc = _run(["-c", "import sys; from cython_lint.cython_lint import main; sys.exit(main())",
                 *CYTHON])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_linters_catch_a_finding(tmp_path):
    """The checks can fail: an unused import and a too long line are found."""
    pytest.importorskip("ruff", reason="ruff (the 'test' extra) is not installed")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n" + "x = 1  # " + "a" * 130 + "\n")
    proc = _run(["ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(bad)])
    assert proc.returncode == 1 and "F401" in proc.stdout and "E501" in proc.stdout
