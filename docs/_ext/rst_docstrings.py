"""A griffe extension for the API reference: the package's docstrings are written for plain text
and Sphinx (``:func:`x```, ``.. math::``, ``Example:``, a paragraph ending in ``::``); this turns
those into the Markdown that mkdocstrings renders. The source files are not changed."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|exc|obj|const|term):`~?([^`]+)`")


def _convert(text: str) -> str:
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == "Example:":
            out.append(f"{indent}Examples:")
        elif stripped == ".. math::":
            # the indented block that follows becomes a fenced block
            i += 1
            body: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            width = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            out.append(f"{indent}```text")
            out.extend(indent + b[width:] if b.strip() else "" for b in body)
            out.append(f"{indent}```")
            out.append("")
            continue
        elif stripped.endswith("::") and not stripped.startswith(">>>"):
            out.append(line[:-1])  # "text::" introduces a literal block: the block stays, one colon
        else:
            out.append(line)
        i += 1
    return "\n".join(out)


class RstDocstrings(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _convert(obj.docstring.value)
