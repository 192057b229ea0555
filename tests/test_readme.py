"""The README's Python examples run, in order, in one namespace (executable docs)."""
import pathlib
import re

from conftest import needs_fashion_mnist

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 3


@needs_fashion_mnist
def test_readme_examples_run(capsys):
    namespace = {}
    for i, block in enumerate(python_blocks()):
        exec(compile(block, f"README.md python block {i}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "m̂" in out or "m_hat" in out, "the trace table should name the formula's quantities"
    # The first-look loop trained one epoch; the Keras model two short ones: both learned.
    assert namespace["loss"].item() < 1.0
    loss, accuracy = namespace["model"].evaluate(namespace["x_test"] / 255.0, namespace["y_test"], verbose=0)
    assert accuracy > 0.7
