"""Meta-tests: error codes are documented, doc code blocks run, modules stay small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llmos"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_usage_error_code_has_a_section() -> None:
    codes = set()
    for path in PACKAGE.rglob("*.py"):
        codes.update(re.findall(r'code="([a-z0-9-]+)"', path.read_text(encoding="utf-8")))
    sections = set(re.findall(r"^### ([a-z0-9-]+)$", (ROOT / "docs/errors.md").read_text(), re.M))
    assert codes, "no codes found"
    assert codes - sections == set(), "document these codes in docs/errors.md"


def test_modules_stay_within_the_line_budget() -> None:
    # STYLE: modules run 100-400 lines; split past ~800
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800
    }
    assert long == {}


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
            blocks.append((f"{doc.relative_to(ROOT)}#{i}", block))
    return blocks


@pytest.mark.model
@pytest.mark.parametrize(("where", "code"), _python_blocks(), ids=[w for w, _ in _python_blocks()])
def test_doc_code_blocks_run(
    where: str, code: str, cpu: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmos.cpu.llama import LlamaCPU

    # every block that boots the default model gets the session's instance
    monkeypatch.setattr(LlamaCPU, "default", classmethod(lambda cls, **_: cpu))
    exec(compile(code, where, "exec"), {"__name__": "__doc_block__"})
