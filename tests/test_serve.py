"""``llmos serve-mcp``: an MCP client from the SDK drives llmos's devices and meets their walls.

The real command runs as a subprocess and an SDK client (stdio) drives it with every case of
the shared path-traversal corpus and every blocked case of the SSRF corpus. The SSRF corpus's
name-based cases need its stub DNS and stub responses, which a subprocess cannot see, so the
same server is also built in process around a stubbed browser and driven by the SDK's client,
case by case, with the corpus's own verdicts.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, ClientSession, StdioServerParameters, stdio_client

from llmos.peripherals import Browser, Calculator
from llmos.serve import mcp_server
from tests.peripherals import test_ssrf as ssrf
from tests.peripherals.test_path_traversal import CANARY, PATHS, Jail, _expand, _literal_target
from tests.peripherals.test_ssrf import CASES, MAX_BYTES, _Canary, _CaseTransport, _Clock

canary = ssrf.canary  # the SSRF suite's loopback canary server (a fixture), shared

BLOCK = ("block", "block_or_policy")


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def _drive(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> list[
    tuple[bool, str]
]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = {t.name for t in (await session.list_tools()).tools}
        assert {"fs.read", "fs.write", "fs.list", "browser.fetch", "python.run"} <= listed
        out = []
        for name, args in calls:
            result = await session.call_tool(name, args)
            out.append((bool(result.is_error), _text(result)))
        return out


def test_serve_mcp_refuses_the_corpora_over_stdio(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jail = Jail(tmp_path)
    paths = [(case, _expand(case, jail)) for case in PATHS]
    for case, path in paths:  # plant literal files, so a literal reading is observable
        if case["recommended_handling"] != "reject_or_literal":
            continue
        literal = _literal_target(jail, path)
        if literal is not None:
            literal.parent.mkdir(parents=True, exist_ok=True)
            literal.write_text(f"LITERAL:{case['id']}")
    jail.before = jail.snapshot()
    calls: list[tuple[str, dict[str, Any]]] = []
    for case, path in paths:
        calls += [("fs.read", {"path": path}), ("fs.list", {"path": path}),
                  ("fs.write", {"path": path, "text": f"WRITTEN:{case['id']}"})]
    blocked = [c for c in CASES if c["expected"] in BLOCK]
    calls += [("browser.fetch", {"url": c["url"]}) for c in blocked]
    calls.append(("python.run", {"code": "import os\nprint(os.listdir('/'))"}))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "llmos", "serve-mcp", "--peripherals", "python,fs,browser",
              "--root", str(jail.root)],
    )
    results = anyio.run(_drive, params, calls)

    verdicts: Counter[str] = Counter()
    for i, (case, path) in enumerate(paths):
        ops = results[3 * i : 3 * i + 3]
        assert all(CANARY not in text and "root:x:0:0" not in text for _, text in ops)
        handling = case["recommended_handling"]
        if handling == "reject":
            assert all(failed for failed, _ in ops), (case["id"], ops)
            verdicts["refused"] += 1
        elif handling == "reject_or_literal":
            read_failed, read_text = ops[0]
            assert read_failed or read_text == f"LITERAL:{case['id']}", (case["id"], ops)
            verdicts["refused" if all(f for f, _ in ops) else "literal-ok"] += 1
        else:  # a benign control: reading works (listing, for the root itself)
            assert not ops[1 if path == "." else 0][0], (case["id"], ops)
            verdicts["allowed-ok"] += 1
    jail.assert_contained()
    fetched = results[3 * len(paths) : 3 * len(paths) + len(blocked)]
    for case, (failed, text) in zip(blocked, fetched, strict=True):
        assert failed, (case["id"], text)
    sandbox_failed, sandbox_text = results[-1]
    assert sandbox_failed and "os" in sandbox_text  # not an allowlisted module
    assert verdicts["refused"] > 0 and sum(verdicts.values()) == len(PATHS) == 79
    assert len(blocked) == 92
    refused_urls = sum(text.startswith("refused: ") for _, text in fetched)
    with capsys.disabled():
        print(
            f"\nserve-mcp over stdio: path traversal {len(PATHS)} cases, refused "
            f"{verdicts['refused']}, literal-ok {verdicts['literal-ok']}, allowed-ok "
            f"{verdicts['allowed-ok']}, escaped 0; SSRF {len(blocked)} blocked cases, all "
            f"errors ({refused_urls} with the wall's own 'refused:'; the in-process run below "
            "checks each case's verdict under the corpus's stub DNS)"
        )


async def _fetch_in_process(browser: Browser, url: str) -> tuple[bool, str]:
    async with Client(mcp_server([browser])) as client:
        result = await client.call_tool("browser.fetch", {"url": url})
        return bool(result.is_error), _text(result)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_serve_mcp_browser_meets_every_ssrf_case(case: dict[str, Any], canary: int) -> None:
    clock = _Clock()
    transport = _CaseTransport(case, canary, clock)
    resolver, lookups = ssrf._stub_resolver(case)
    browser = Browser(resolver=resolver, transport=transport, clock=clock)
    failed, text = anyio.run(_fetch_in_process, browser, case["url"])
    assert not transport.escapes, f"{case['id']}: reached {transport.escapes}"
    assert _Canary.hits == []
    expected = case["expected"]
    if expected in BLOCK:
        assert failed and text.startswith("refused: "), (case["id"], text)
    elif expected in ("allow", "allow_without_env_proxy"):
        assert not failed and "Example Domain" in text, (case["id"], text)
    elif expected == "pin_or_block":
        assert len(lookups) <= 1
    else:
        assert expected == "contain"
        assert len(text) <= MAX_BYTES + 100


def test_serve_mcp_validates_before_any_device_runs() -> None:
    async def go() -> list[tuple[bool, str]]:
        async with Client(mcp_server([Calculator()])) as client:
            tools = (await client.list_tools()).tools
            assert [t.name for t in tools] == ["calculator.evaluate"]
            assert tools[0].annotations is not None and tools[0].annotations.read_only_hint
            out = []
            for name, args in [("calculator.evaluate", {"expression": "6*7"}),
                               ("calculator.evaluate", {"expression": 42, "extra": 1}),
                               ("answer", {"text": "x"})]:
                result = await client.call_tool(name, args)
                out.append((bool(result.is_error), _text(result)))
            return out

    ok, bad, unknown = anyio.run(go)
    assert ok == (False, "42")
    assert bad[0] and "bad arguments" in bad[1]
    assert unknown[0] and "unknown tool" in unknown[1]
