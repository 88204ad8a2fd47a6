"""A stand-in for `rxledger node start --config FILE`, so the launcher's tests run real
processes without the node: it serves `GET /health` on the config's RPC port.

Behaviour per node, from the environment (comma-separated node names):
  FAKE_NODE_DIE        print an error and exit 3 shortly after start
  FAKE_NODE_NOT_READY  answer with head 0 forever
  FAKE_NODE_IGNORE_TERM  ignore SIGTERM (only SIGKILL stops it)
  FAKE_NODE_GENESIS    (a hash) report this genesis instead of network.json's
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def names(var: str) -> set[str]:
    return {n for n in os.environ.get(var, "").split(",") if n}


def main() -> int:
    config_path = Path(sys.argv[sys.argv.index("--config") + 1])
    config = tomllib.loads(config_path.read_text())
    name = config["name"]
    network = json.loads((Path(config["genesis"]).parent / "network.json").read_text())
    print(f"fake node {name} starting (pid {os.getpid()})", flush=True)
    if name in names("FAKE_NODE_DIE"):
        time.sleep(0.3)
        print(f"fatal: cannot open the database of {name} (fake failure)", file=sys.stderr, flush=True)
        return 3
    if name in names("FAKE_NODE_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        def on_term(signum: int, frame: object) -> None:
            raise SystemExit(0)
        signal.signal(signal.SIGTERM, on_term)
    head = 0 if name in names("FAKE_NODE_NOT_READY") else 1
    genesis = os.environ.get("FAKE_NODE_GENESIS") or network["genesisHash"]
    body = json.dumps({"status": "ok", "node": name, "chainId": network["chainId"],
                       "genesisHash": genesis, "head": head,
                       "headHash": "0x" + f"{head:064x}", "peers": []}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/health":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((config["rpc"]["host"], config["rpc"]["port"]), Handler)
    try:
        server.serve_forever(poll_interval=0.05)
    except SystemExit:
        print(f"fake node {name} stopped cleanly", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
