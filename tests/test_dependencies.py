"""A fresh install must not change under our feet: every runtime and test dependency in setup.py has
an upper bound, and the versions CI installed (and so tested) lie within the declared ranges.

Issue 19: `opencv-python-headless>=4.6` let pip install OpenCV 5.1, and the ROS simulation node died
at its first frame."""

import ast
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("<", "<=", "==", "~=", "===")


def declared() -> list[str]:
    """Every requirement string in setup.py's install_requires and extras_require (lists may splice
    module-level lists of literals, e.g. `"test": [..., *EXPORT]`)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    names = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.List)}

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name):
            return list(names[node.id])
        out = []
        for item in node.elts:
            out.extend(strings(item.value) if isinstance(item, ast.Starred) else [ast.literal_eval(item)])
        return out

    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: k.value for k in call.keywords}
    reqs = strings(kw["install_requires"])
    for extra in kw["extras_require"].values:
        reqs.extend(strings(extra))
    return sorted(set(reqs))


@pytest.mark.parametrize("line", declared())
def test_every_dependency_has_an_upper_bound_and_the_installed_version_fits(line):
    req = Requirement(line)
    assert any(spec.operator in UPPER for spec in req.specifier), (
        f"setup.py: {line!r} has no upper bound; add '<next major>' after testing the current one")
    try:
        installed = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{req.name} is not installed here")
    assert req.specifier.contains(installed, prereleases=True), (
        f"{req.name} {installed} is installed but setup.py allows {req.specifier}: test it, then move "
        "the bound")

