"""A hospital can use the SDK without the node's packages: no module of client_sdk imports
the node, the network tools or the chaincode (read from the source, lazy imports
included), and at run time a Python that refuses to import the node's packages and its
heavy dependencies (py-evm, plyvel, FastAPI, uvicorn, …) still imports client_sdk,
verifies an anchoring receipt offline (made earlier in the test against a real dev node),
issues, reviews and verifies a prescription (the SDK builds and signs the transactions)
over the SDK's own client and over web3.py, and anchors.

py-trie stays allowed: the SDK proves receipts with its Merkle-Patricia proofs. It is a
small library of its own (eth-hash, eth-utils, rlp, hexbytes, sortedcontainers), not
py-evm, which it does not import.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from devnode import CHAIN_ID, DevNode

from client_sdk import Anchorer
from node.genesis import dev_accounts, dev_validator_key
from rxledger.core.crypto import private_key_to_address

REPO = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("node", "network", "chaincode_py")
# Top-level import names: py-evm is `eth` (not the `eth_*` libraries the SDK uses).
FORBIDDEN = (*SERVER_PACKAGES, "eth", "evm", "plyvel", "fastapi", "starlette", "uvicorn",
             "httptools", "uvloop")

HOSPITAL_SCRIPT = r'''
import importlib.abc
import json
import sys

FORBIDDEN = set(json.loads(sys.argv[1]))


class RefuseServerImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"the SDK imported {name}, a package a hospital does not install")
        return None


sys.meta_path.insert(0, RefuseServerImports())

import client_sdk  # noqa: E402
from client_sdk import (  # noqa: E402
    Anchorer, AnchorReceipt, Hospital, Pharmacy, Trust, VerificationFailed, verify_receipt,
)
from web3 import HTTPProvider, Web3  # noqa: E402

args = json.loads(sys.stdin.read())

# 1. Offline: the receipt made earlier against the node, checked against the validator.
trust = Trust.from_validators([args["validator"]], chain_id=args["chain_id"])
receipt = AnchorReceipt.from_json(args["receipt"])
verify_receipt(receipt, trust, record=args["record"].encode())
try:
    verify_receipt(receipt, trust, record=b"another record")
except VerificationFailed:
    pass
else:
    raise SystemExit("a receipt verified for another record")

# 2. Online: the SDK builds and signs the transactions (own client, then web3.py).
request = args["request"]
hospital = Hospital(args["url"], bytes.fromhex(args["prescriber"]))
reviewer = Hospital(Web3(HTTPProvider(args["url"])), bytes.fromhex(args["reviewer"]))
pharmacy = Pharmacy(args["url"], bytes.fromhex(args["pharmacist"]))
issued = hospital.issue(request)
reviewer.review(issued.rx_id, approve=True)
check = pharmacy.verify(issued.token)
assert check.dispensable, check.reasons
with Anchorer(args["url"], bytes.fromhex(args["prescriber"])) as anchorer:
    (own,) = anchorer.submit([b"anchored by the hospital"])
verify_receipt(own, trust, record=b"anchored by the hospital")

loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"rx_id": issued.rx_id, "status": hospital.get(issued.rx_id).status,
                  "loaded": loaded, "sdk": client_sdk.__file__}))
'''


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_sdk_module_imports_the_server_even_lazily() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / "client_sdk").glob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] in SERVER_PACKAGES
        or (name.startswith("rxledger") and not name.startswith("rxledger.core"))
    }
    assert offenders == set()


def test_a_hospital_without_the_node_packages_verifies_issues_and_anchors(
    dev_node: DevNode, tmp_path: Path,
) -> None:
    accounts = dev_accounts()
    prescriber, reviewer, pharmacist = accounts[1], accounts[2], accounts[3]
    record = "discharge letter " + os.urandom(8).hex()
    with Anchorer(dev_node.url, prescriber.private_key) as anchorer:
        (receipt,) = anchorer.submit([record.encode()])
    request = {
        "resourceType": "MedicationRequest", "id": "rx-no-node-" + os.urandom(6).hex(),
        "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361",
            "display": "Amlodipine 5 MG Oral Tablet"}]},
        "subject": {"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999911122"}},
        "authoredOn": "2026-11-22",
        "dispenseRequest": {"numberOfRepeatsAllowed": 1, "quantity": {"value": 20, "unit": "TAB"}},
    }
    args = {
        "url": dev_node.url, "chain_id": CHAIN_ID,
        "validator": "0x" + private_key_to_address(dev_validator_key()).hex(),
        "receipt": receipt.to_json(), "record": record, "request": request,
        "prescriber": prescriber.private_key.hex(), "reviewer": reviewer.private_key.hex(),
        "pharmacist": pharmacist.private_key.hex(),
    }
    # -I would drop PYTHONPATH too; the repository goes on the path explicitly instead.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", HOSPITAL_SCRIPT, json.dumps(FORBIDDEN)],
        input=json.dumps(args), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == "active"
    assert out["loaded"] == []
    assert out["sdk"] == str(REPO / "client_sdk" / "__init__.py")
