"""The README's training example runs as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_training_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Training and gradient-flow diagnostics"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "'count': 50" in printed
    result = eval(printed.strip(), {})
    assert result["loss"] < 0.01  # the baseline (predicting the mean) is about 0.2
    assert namespace["dh"].shape == (21, 4, 16) and namespace["sv"].shape == (1, 21, 16)
    assert set(namespace["stats"]) == {"z", "r", "g"}
