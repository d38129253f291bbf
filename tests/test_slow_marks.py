"""Tests that start processes or compile kernels carry the ``slow`` mark, and ``make test`` runs them.

A test needs the mark when its body, a helper function of its module it calls, or a fixture of its
module it takes starts a process (``subprocess``, ``mp.spawn``) or compiles (``torch.compile``,
``torch.jit``, an optimizer built with ``fused=True``). The mark may sit on the function, on the
parameters that need it (``pytest.param(..., marks=...)``), or in the module's ``pytestmark``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Tests whose helper can compile but is called on a path that does not (``_trained(False)``: the loop).
NOT_HEAVY = {
    "test_outside_writes.py::test_an_in_place_write_through_data_is_the_documented_limit_and_the_next_step_names_it",
}

# Modules whose optimizers are built with a ``fused`` flag passed in as data (so the call site
# reads ``fused=fused``): every test there compiles, so the whole module carries the mark.
COMPILING_MODULES = {"test_fused.py"}

_PROCESS_CALLS = {
    ("subprocess", "run"),
    ("subprocess", "Popen"),
    ("subprocess", "call"),
    ("subprocess", "check_call"),
    ("subprocess", "check_output"),
    ("mp", "spawn"),
    ("multiprocessing", "spawn"),
    ("torch", "compile"),
    ("jit", "script"),
    ("jit", "trace"),
}


def _is_slow_mark(node: ast.AST) -> bool:
    """``pytest.mark.slow`` (called or not)."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == "slow"


def _starts_or_compiles(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Attribute):
                base = func.value
                base_name = (
                    base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
                )
                if (base_name, func.attr) in _PROCESS_CALLS:
                    return True
            for kw in sub.keywords:
                if kw.arg == "fused" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    return True
    return False


def _names_used(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def _heavy_functions(tree: ast.Module) -> set[str]:
    """Module-level functions that start a process or compile, directly or through another one."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    heavy = {name for name, fn in functions.items() if _starts_or_compiles(fn)}
    changed = True
    while changed:
        changed = False
        for name, fn in functions.items():
            if name in heavy:
                continue
            used = _names_used(fn) | {a.arg for a in fn.args.args}
            if used & heavy:
                heavy.add(name)
                changed = True
    return heavy


def _module_is_slow(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            value = node.value
            marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            if any(_is_slow_mark(m) for m in marks):
                return True
    return False


def _params_marked_slow(decorator: ast.AST) -> bool:
    """``@pytest.mark.parametrize(..., [..., pytest.param(..., marks=pytest.mark.slow)])``: the
    parameters that start or compile carry the mark (the others stay fast)."""
    if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"):
        return False
    if len(decorator.args) < 2 or not isinstance(decorator.args[1], (ast.List, ast.Tuple)):
        return False
    values = decorator.args[1].elts
    return any(
        isinstance(v, ast.Call)
        and getattr(v.func, "attr", "") == "param"
        and any(kw.arg == "marks" and _is_slow_mark(kw.value) for kw in v.keywords)
        for v in values
    )


def unmarked_heavy_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    if _module_is_slow(tree):
        return []
    if path.name in COMPILING_MODULES:
        return [f"{path.name}: the module (pytestmark)"]
    heavy = _heavy_functions(tree)
    missing = []
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test")):
            continue
        if node.name not in heavy or f"{path.name}::{node.name}" in NOT_HEAVY:
            continue
        if any(_is_slow_mark(d) or _params_marked_slow(d) for d in node.decorator_list):
            continue
        missing.append(f"{path.name}::{node.name}")
    return missing


def test_tests_that_start_processes_or_compile_are_marked_slow():
    missing = [name for path in sorted(TESTS.glob("test_*.py")) for name in unmarked_heavy_tests(path)]
    assert not missing, "start a process or compile, without @pytest.mark.slow:\n  " + "\n  ".join(missing)


def test_the_checker_sees_a_process_through_a_helper_and_a_fixture(tmp_path):
    source = (
        "import subprocess, pytest\n"
        "def run(*a):\n    return subprocess.run(a)\n"
        "@pytest.fixture\ndef started():\n    return run('x')\n"
        "def test_direct():\n    run('x')\n"
        "def test_fixture(started):\n    pass\n"
        "@pytest.mark.slow\ndef test_marked():\n    run('x')\n"
        "def test_fast():\n    assert 1\n"
        "def test_compiles():\n    import torch\n    torch.compile(lambda x: x)\n"
        "def test_fused_optimizer():\n    make(fused=True)\n"
        "@pytest.mark.parametrize('p', [1, pytest.param(2, marks=pytest.mark.slow)])\ndef test_param(p):\n    run(p)\n"
        "@pytest.mark.parametrize('p', [1, 2])\ndef test_param_unmarked(p):\n    run(p)\n"
    )
    path = tmp_path / "test_example.py"
    path.write_text(source)
    assert unmarked_heavy_tests(path) == [
        "test_example.py::test_direct",
        "test_example.py::test_fixture",
        "test_example.py::test_compiles",
        "test_example.py::test_fused_optimizer",
        "test_example.py::test_param_unmarked",
    ]


def test_slow_tests_are_not_deselected_by_make_test_or_the_pytest_config():
    addopts = re.search(r"^addopts = (.*)$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert addopts and "not slow" not in addopts.group(1)
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "Makefile has no test target"
    assert "pytest" in recipe.group(1) and "not slow" not in recipe.group(1)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
