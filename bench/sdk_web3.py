"""The SDK over its own JSON-RPC client against the SDK over web3.py, on one dev node.

Starts `rxledger node start --dev` on a free port (or uses `--url`), then, in rounds that
alternate the order (own, web3, web3, own, …) so drift hits both alike, per connection:

- `--n` prescription issues (`Hospital.issue`: estimate, send, wait until final), one
  after the other, from development account 1;
- `--reads` reads of one prescription (`Hospital.get`: one `eth_call`).

Connections: `own` = a URL (the SDK's httpx client, `client_sdk._rpc.Rpc`); `web3` =
`Web3(HTTPProvider(url))` with web3's default middleware (the SDK signs);
`web3-signer` = the same with `SignAndSendRawMiddlewareBuilder` and a default account (the
Web3 signs; issues only). Reported: per connection the median over rounds of issues per
second and of reads per second, the machine (bench/machine_info.py) and the commit.

    python bench/sdk_web3.py --n 100 --reads 500 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import DevNode
from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402
from web3.middleware import SignAndSendRawMiddlewareBuilder  # noqa: E402

from client_sdk import Hospital  # noqa: E402
from node.genesis import dev_accounts  # noqa: E402

PRESCRIBER = 1


def medication_request(i: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": f"bench-{os.urandom(6).hex()}-{i}",
        "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361",
            "display": "Amlodipine 5 MG Oral Tablet"}]},
        "subject": {"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999911120"}},
        "authoredOn": "2026-11-22",
        "dispenseRequest": {"numberOfRepeatsAllowed": 1, "quantity": {"value": 20, "unit": "TAB"}},
    }


def hospital(kind: str, url: str, key: bytes) -> Hospital:
    if kind == "own":
        return Hospital(url, key)
    w3 = Web3(HTTPProvider(url))
    if kind == "web3":
        return Hospital(w3, key)
    account = Account.from_key(key)
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    w3.eth.default_account = account.address
    return Hospital(w3)


def measure(kind: str, url: str, key: bytes, n: int, reads: int) -> dict[str, float]:
    role = hospital(kind, url, key)
    role.issue(medication_request(-1))  # warm-up: connection, chain id, nonce
    start = time.perf_counter()
    issued = [role.issue(medication_request(i)) for i in range(n)]
    issues = n / (time.perf_counter() - start)
    out = {"issues_per_s": issues}
    if kind != "web3-signer":
        start = time.perf_counter()
        for _ in range(reads):
            role.get(issued[-1].rx_id)
        out["reads_per_s"] = reads / (time.perf_counter() - start)
    role.close()
    return out


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running dev node (default: start one)")
    parser.add_argument("--n", type=int, default=100, help="issues per connection and round")
    parser.add_argument("--reads", type=int, default=500, help="reads per connection and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with DevNode(args.url, prefix="sdk-web3-bench-") as node:
        url = node.url
        assert url is not None
        key = dev_accounts()[PRESCRIBER].private_key
        kinds = ["own", "web3", "web3-signer"]
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds if r % 2 == 0 else reversed(kinds):
                runs[kind].append(measure(kind, url, key, args.n, args.reads))
        result: dict[str, Any] = {
            "machine": machine(), "commit": git_commit(), "n": args.n, "reads": args.reads,
            "rounds": args.rounds,
        }
        for kind, figures in runs.items():
            result[kind] = {
                name: round(statistics.median(f[name] for f in figures), 1)
                for name in figures[0]
            }
        print(json.dumps(result, indent=2))
        own = result["own"]
        for kind in ("web3", "web3-signer"):
            print(f"{kind}: issues {result[kind]['issues_per_s'] / own['issues_per_s']:.2f}x the own client"
                  + (f", reads {result[kind]['reads_per_s'] / own['reads_per_s']:.2f}x"
                     if "reads_per_s" in result[kind] else ""))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
