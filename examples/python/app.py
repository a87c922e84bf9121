"""The Python example's app: a small HTTP service that parses wheel file
names with the `wheel` package, which pip installs in the dependency stage
into /app/deps (on PYTHONPATH).

  GET /parse?name=wheel-0.43.0-py3-none-any.whl
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import wheel
from wheel.wheelfile import WHEEL_INFO_RE

from greeting import greeting


def parse(name):
    m = WHEEL_INFO_RE.match(name)
    return m.groupdict() if m else None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/parse":
            body = json.dumps(parse(parse_qs(url.query).get("name", [""])[0]))
        else:
            body = greeting()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode() + b"\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        # What the dependency stage installed, for a quick smoke test.
        print(f"wheel {wheel.__version__} from {os.path.dirname(wheel.__file__)}")
        print(json.dumps(parse("wheel-0.43.0-py3-none-any.whl"), sort_keys=True))
        sys.exit(0)
    HTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
