"""Web reader: the model reads a page and answers from it (the page is served on loopback).

Run it from the repository root (it loads the embedded default model once):

    python examples/04_web_reader.py

What it shows:
- a tiny web site served by ``http.server`` on 127.0.0.1 in a thread, so nothing leaves the
  machine; the browser opens loopback only because ``allow_hosts`` names that exact host:port
  (by default it refuses every private address);
- the page enters RAM as *untrusted* text with its URL as provenance (the trace says so);
- the URL in the call is grounded: the model can only fetch a URL the user wrote.
"""

from __future__ import annotations

import http.server
import threading

from llmos.kernel.boot import Kernel
from llmos.peripherals.browser import Browser

PAGE = b"""<html><head><title>Riverside Library</title></head><body>
<h1>Riverside Library</h1>
<p>Opening hours: Monday to Friday 9:00 to 18:00. Saturday 10:00 to 14:00. Closed on Sunday.</p>
<p>Library cards are free for residents. Lost cards cost 5 euros to replace.</p>
</body></html>"""


class Site(http.server.BaseHTTPRequestHandler):
    """Serves PAGE at every path."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output readable


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    url = f"http://{host}/library"
    kernel = Kernel(peripherals=[Browser(allow_hosts=[host])])
    questions = [
        f"What does {url} say about Sunday?",
        f"How much does a lost card cost according to {url} ?",
    ]
    try:
        for question in questions:
            reply = kernel.run(kernel.spawn(), question)
            print(f"Q: {question}")
            for call in reply.calls:
                trust = "trusted" if call.trusted else f"untrusted, from {call.source}"
                print(f"  {call.syscall} {call.args} ({call.status}, {trust})")
                print(f"    -> {call.result[:200]!r}")
            print(f"A: {reply.text}\n")
    finally:
        kernel.close()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
