"""The package's source holds no way for a file to run code, and writes only standard JSON.

Scanned with ``ast`` (comments and strings cannot hide or fake a call): no ``pickle.load`` /
``pickle.loads`` / other unpicklers but the CIFAR reader's restricted one, ``torch.load`` only
with ``weights_only=True``, no ``yaml.load`` (``yaml.safe_load`` only), no ``numpy.load`` with
``allow_pickle=True``, and ``json.dump`` / ``json.dumps`` only with ``allow_nan=False``.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rewa"
PATHS = sorted(PACKAGE.rglob("*.py"))

# the only unpickler: it admits numpy's array reconstruction and nothing else
RESTRICTED_UNPICKLER = ("experiments/data.py", "_CifarUnpickler")
JSON_ALLOWED: set[str] = set()
TORCH_LOAD_ALLOWED: set[str] = set()

# modules whose loaders run code from the file (any use is refused)
_CODE_RUNNING = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal")
_REFUSED_CALLS = {"joblib.load", "pickle.load", "pickle.loads", "yaml.load", "yaml.load_all", "yaml.unsafe_load",
                  "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all", "pandas.read_pickle"}  # fmt: skip


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name, from every import in the module (function-level ones too)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _keyword(call: ast.Call, name: str) -> object:
    """The constant value of keyword ``name``; ``...`` when absent, ``None``-like sentinel
    ``"<not a constant>"`` when given but not a literal (or hidden in ``**kwargs``)."""
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<not a constant>"
    if any(k.arg is None for k in call.keywords):
        return "<not a constant>"
    return ...


def violations(path: Path, source: str | None = None) -> list[str]:
    """What the rules refuse in one file, as ``file:line: reason``."""
    relative = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    aliases = _aliases(tree)
    found = []

    def refuse(node: ast.AST, reason: str) -> None:
        found.append(f"{relative}:{getattr(node, 'lineno', '?')}: {reason}")

    allowed_bases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and (relative, node.name) == RESTRICTED_UNPICKLER:
            allowed_bases.update(id(b) for b in node.bases)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _CODE_RUNNING:
            refuse(node, f"from {node.module} import ...: use the module's name (pickle.X) so the scan sees it")
        if isinstance(node, ast.ClassDef) and any(_dotted(b, aliases) == "pickle.Unpickler" for b in node.bases):
            if (relative, node.name) != RESTRICTED_UNPICKLER:
                refuse(node, f"class {node.name}(pickle.Unpickler): the only unpickler is {RESTRICTED_UNPICKLER[1]}")
        if isinstance(node, ast.Attribute) and id(node) not in allowed_bases:
            name = _dotted(node, aliases)
            if name is not None and name.split(".")[0] in _CODE_RUNNING and name not in ("pickle.dump", "pickle.dumps"):
                if name.endswith("Error"):  # catching pickle.UnpicklingError loads nothing
                    continue
                if not (name == "pickle.Unpickler" and relative == RESTRICTED_UNPICKLER[0]):
                    refuse(node, f"{name}: loads code from a file")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name is None:
            continue
        if name in _REFUSED_CALLS:
            refuse(node, f"{name}(...) can run code from the file" + (": use yaml.safe_load" if "yaml" in name else ""))
        elif name.endswith("Unpickler") and name != RESTRICTED_UNPICKLER[1]:
            refuse(node, f"{name}(...): the only unpickler is {RESTRICTED_UNPICKLER[1]}")
        elif name in ("torch.load", "torch.serialization.load") and _keyword(node, "weights_only") is not True:
            if relative not in TORCH_LOAD_ALLOWED:
                refuse(node, f"{name}(...) without weights_only=True")
        elif name in ("numpy.load", "numpy.lib.npyio.load") and _keyword(node, "allow_pickle") not in (..., False):
            refuse(node, f"{name}(..., allow_pickle=...): numpy unpickles object arrays")
        elif name in ("json.dump", "json.dumps") and _keyword(node, "allow_nan") is not False:
            if relative not in JSON_ALLOWED:
                refuse(node, f"{name}(...) without allow_nan=False writes NaN/Infinity (use rewa._json.dumps)")
    return found


def test_the_package_source_has_no_unsafe_loader_and_writes_standard_json():
    found = [v for path in PATHS for v in violations(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("import pickle\npickle.load(open('f', 'rb'))", "pickle.load: loads code"),
        ("import pickle as p\nx = p.loads(b'')", "pickle.loads: loads code"),
        ("from pickle import loads", "from pickle import"),
        ("import pickle\nclass Mine(pickle.Unpickler): pass", "class Mine(pickle.Unpickler)"),
        ("import torch\ntorch.load('f')", "torch.load(...) without weights_only=True"),
        ("import torch\ntorch.load('f', weights_only=False)", "without weights_only=True"),
        ("from torch import load\nload('f')", "torch.load(...) without weights_only=True"),
        ("import yaml\nyaml.load(text)", "yaml.load(...) can run code"),
        ("import numpy as np\nnp.load('f', allow_pickle=True)", "numpy.load(..., allow_pickle=...)"),
        ("import json\njson.dumps({})", "json.dumps(...) without allow_nan=False"),
        ("import json\njson.dump({}, f, **options)", "json.dump(...) without allow_nan=False"),
    ],
)
def test_the_scan_finds_each_refused_form(source, reason):
    found = violations(PACKAGE / "cli.py", source)
    assert any(reason in f for f in found), found


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('f', weights_only=True)",
        "import yaml\nyaml.safe_load(text)",
        "import numpy as np\nnp.load('f')\nnp.load('g', allow_pickle=False)",
        "import json\njson.dumps({}, allow_nan=False)\njson.loads('{}')",
        "# pickle.load(f) in a comment\ntext = 'torch.load(f)'",
        "import pickle\npickle.dumps({})",
        "import pickle\ntry:\n    pass\nexcept pickle.UnpicklingError:\n    pass",
    ],
)
def test_the_scan_lets_safe_forms_pass(source):
    assert violations(PACKAGE / "cli.py", source) == []


def _standard(text: str):
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null_with_a_note():
    from rewa import _json

    record = {"threshold": 0.0, "compression": math.inf, "rows": [{"loss": math.nan, "ok": 1.0}, 2.0, -math.inf]}
    out = _standard(_json.dumps(record))
    assert out["compression"] is None and out["rows"][0]["loss"] is None and out["rows"][2] is None
    assert out["non_finite_as_null"] == {"compression": "inf", "rows/2": "-inf"}
    assert out["rows"][0]["non_finite_as_null"] == {"loss": "nan"}
    assert _standard(_json.dumps({"a": 1.5, "b": [1, "x"]})) == {"a": 1.5, "b": [1, "x"]}  # no note


def test_the_command_line_records_are_standard_json(tmp_path):
    from rewa.paper.cli import _write_json

    path = _write_json({"requested": 0.99, "compression": math.inf}, tmp_path, "record.json")
    out = _standard(path.read_text())
    assert out["compression"] is None and out["non_finite_as_null"] == {"compression": "inf"}
