"""The command line, ``python -m pyx_gru``: its subcommands ``check`` and
``docs`` (``docs`` itself is run by the site fixture of test_site.py)."""
import subprocess
import sys

import pytest

from pyx_gru import _site
from pyx_gru.__main__ import CONFIGS, build_parser, main


def test_check_prints_every_cell(capsys):
    assert main(["check", "--T", "20", "--B", "2", "--D", "3", "--H", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("RNN", "SimpleGRU", "GRU reset=after", "GRU reset=before", "MGU reset=after",
                  "MGU reset=before", "LSTM", "LSTM peephole", "CoupledLSTM",
                  "CoupledLSTM peephole"):
        assert any(line.startswith(label + " ") for line in out.splitlines()), label
    assert "OK (threshold 1e-6)" in out
    # every row's columns line up under the header's, the longest label too
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("cell "))
    rows = lines[header + 2:header + 2 + len(CONFIGS)]
    assert len({len(line) for line in rows} | {len(lines[header])}) == 1, rows


def test_check_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "pyx_gru", "check", "--T", "5", "--H", "3", "--D", "2", "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "params" in proc.stdout and "speed-up" in proc.stdout


def test_check_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--T", "0"])
    assert "--T must be >= 1" in capsys.readouterr().err


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "required" in err and "command" in err


def test_help_lists_the_subcommands():
    text = build_parser().format_help()
    for name in ("docs", "check", "compare"):
        assert name in text
    assert set(build_parser().subcommands) == {"docs", "check", "compare"}


def test_docs_without_sources_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_site, "DOCS", tmp_path / "docs")
    assert main(["docs"]) == 1
    err = capsys.readouterr().err
    assert "docs/conf.py" in err and str(tmp_path / "docs") in err


def test_docs_without_the_extra_names_what_is_missing(capsys, monkeypatch):
    monkeypatch.setattr(_site, "NEEDS", _site.NEEDS + ("no_such_package_pyx_gru",))
    assert main(["docs"]) == 1
    err = capsys.readouterr().err
    assert "no_such_package_pyx_gru" in err and 'pip install -e ".[docs]"' in err


def test_docs_reports_a_failed_build(tmp_path, capsys):
    missing = _site.missing_packages(gallery=False)
    if missing:
        pytest.skip(f"a build needs {', '.join(missing)} (the 'docs' extra), not installed")
    # A source directory whose conf.py raises: sphinx-build fails, and so does docs.
    (tmp_path / "conf.py").write_text("raise RuntimeError('broken conf')\n")
    (tmp_path / "index.rst").write_text("x\n=\n")
    with pytest.raises(RuntimeError, match="sphinx-build failed"):
        _site.build(tmp_path / "out", source=tmp_path, gallery=False, quiet=True)
