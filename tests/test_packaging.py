"""The package list in pyproject.toml is explicit (kernels/ installs as tinyopt.kernels); make sure
it names every package in the tree, so a non-editable install is complete."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def listed_packages():
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M).group(1)
    return set(re.findall(r'"([\w.]+)"', block))


def tree_packages():
    found = {"tinyopt.kernels"} if (ROOT / "kernels" / "__init__.py").exists() else set()
    for init in (ROOT / "tinyopt").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        found.add(".".join(rel.parts))
    for init in (ROOT / "kernels").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "kernels")
        if rel.parts:
            found.add("tinyopt.kernels." + ".".join(rel.parts))
    return found


def test_every_package_is_listed_in_pyproject():
    missing = tree_packages() - listed_packages()
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_no_listed_package_is_missing_from_the_tree():
    stale = listed_packages() - tree_packages()
    assert not stale, f"pyproject.toml lists packages that do not exist: {sorted(stale)}"
