"""The shell on the default model: a page served on loopback is fetched and answered from."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from llmos.cli import main

PAGE = (b"<html><body><h1>Harbour bridge reopens after repairs</h1>"
        b"<p>The bridge opens to traffic on Monday.</p></body></html>")


class _Site(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.model
@pytest.mark.xfail(
    strict=True,
    reason="measured on the chat path with Qwen2.5-Coder 0.5B: the model replied 'It says the "
    "headline is \"Welcome to my website\"' without calling the browser; its first token "
    "chooses a plain reply over <tool_call> on this prompt",
)
def test_llmos_run_fetches_a_loopback_page_and_answers_from_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        question = f"Fetch {url} and tell me the headline"
        assert main(["run", question, "--model", "qwen-0.5b", "--threads", "1", "--json"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    calls = [e for e in out["trace"] if e["type"] == "called"]
    assert calls and calls[0]["syscall"].startswith("browser.") and calls[0]["status"] == "ok"
    assert "bridge" in out["answer"].lower()
