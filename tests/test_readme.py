"""The README's quickstart runs as printed (with 2 epochs instead of 30)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(capsys):
    pytest.importorskip("sklearn")
    text = README.read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert block, "README has no quickstart code block"
    code = block.group(1)
    assert "range(30)" in code
    exec(compile(code.replace("range(30)", "range(2)"), "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "total (counted)" in out and "train accuracy" in out
