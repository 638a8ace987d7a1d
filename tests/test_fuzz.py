"""The fuzz suite (tests/fuzz_api.py) runs in a subprocess: a segfault, an
abort or a hang in compiled code fails this test instead of killing pytest.
The number of inputs it tried is printed at the end of the run, recorded as
a property of the test (``--junitxml``) and in pytest's cache
(``pytest --cache-show pyx_gru/fuzz``)."""
import json
import os
import subprocess
import sys

from helpers import EXAMPLE_SCALE, SUMMARY

DRIVER = os.path.join(os.path.dirname(__file__), "fuzz_api.py")
# Examples on CI (the "ci" profile); "dev" runs a quarter, "thorough" four times.
CI_EXAMPLES = 3000
TIMEOUT = 900


def test_fuzz_the_public_api(tmp_path, request, record_property):
    """Every call of the public API with arbitrary arguments either works
    (with results of the right shapes, inputs unchanged) or raises a
    ValueError or TypeError with a message; none crashes or hangs. Every
    kind of call is seen both working and refused."""
    n = max(100, int(CI_EXAMPLES * EXAMPLE_SCALE))
    report = tmp_path / "fuzz.json"
    try:
        proc = subprocess.run(
            [sys.executable, DRIVER, "--examples", str(n), "--seed", "0", "--report", str(report)],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the fuzz driver hung (no result in {TIMEOUT} s):\n"
                             f"{(exc.stderr or b'')[-4000:]}") from None
    assert proc.returncode == 0, (
        f"the fuzz driver failed with exit code {proc.returncode} (negative: killed by that "
        f"signal, -11 is a segfault); rerun it with: python {DRIVER} --examples {n} --seed 0\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    )
    data = json.loads(report.read_text())
    assert data["examples"] >= n
    outcomes = data["outcomes"]
    for op in ("forward", "backward", "constructor", "params setter", "astype", "save", "load",
               "load model", "gradcheck"):
        ok = outcomes.get(f"{op}:ok", 0)
        refused = outcomes.get(f"{op}:ValueError", 0) + outcomes.get(f"{op}:TypeError", 0)
        assert ok > 0 and refused > 0, (op, ok, refused)
    line = (f"fuzz: {data['examples']} examples, {data['calls']} calls of the public API, "
            f"0 crashes, {data['seconds']} s")
    SUMMARY.append(line)
    record_property("fuzz_examples", data["examples"])
    record_property("fuzz_calls", data["calls"])
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        cache.set("pyx_gru/fuzz", data)
