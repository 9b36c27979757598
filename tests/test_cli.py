"""The shell's model choice: names, paths and the model list (no model is loaded here)."""

from __future__ import annotations

import pytest

from llmos.cli import main


def test_models_lists_every_packaged_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("qwen-0.5b", "qwen-1.5b", "tiny (default)"):
        assert name in out
    assert "Apache-2.0" in out


def test_run_refuses_a_model_that_is_neither_a_name_nor_a_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "hi", "--model", "qwen-7b"]) == 1
    err = capsys.readouterr().err
    assert "neither a packaged model" in err and "qwen-0.5b" in err


def test_run_loads_a_packaged_model_by_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmos.cpu.llama import LlamaCPU
    from llmos.testing import ScriptedCPU

    asked: list[tuple[str, int | None]] = []

    def named(cls: type, name: str, *, n_ctx: int = 4096, n_threads: int | None = None) -> object:
        asked.append((name, n_threads))
        return ScriptedCPU(['{"syscall": "answer", "args": {"text": "four"}}'])

    monkeypatch.setattr(LlamaCPU, "named", classmethod(named))
    assert main(["run", "--json", "--model", "tiny", "--threads", "1", "2+2?"]) == 0
    assert asked == [("tiny", 1)]
    assert '"answer": "four"' in capsys.readouterr().out


def test_the_shell_opens_only_the_loopback_address_the_question_names() -> None:
    from llmos.cli import _shell_devices

    calc, browser = _shell_devices("Fetch http://127.0.0.1:8123/news and http://10.0.0.7:80/")
    assert calc.name == "calculator" and browser.name == "browser"
    assert browser.gate.allow_hosts == {("127.0.0.1", 8123)}
