"""Tests for the committed Solidity artifacts (contracts/artifacts) and their toolchain.

* the artifacts load through ``rxledger.core.artifacts`` and look sane, and in a checkout
  the package data it reads is the committed ``contracts/artifacts`` itself;
* ``python contracts/build.py --check`` reproduces them byte-for-byte with the
  pinned solcjs (skipped only when npm/node are not installed);
* the prague-targeted Counter bytecode deploys and runs on a bare in-memory
  py-evm ``PragueVM`` chain, independent of any RxLedger node code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi import decode, encode
from eth_keys import keys
from eth_utils import function_signature_to_4byte_selector, keccak, to_wei

from rxledger.core.artifacts import ARTIFACTS_DIR, load_artifact

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_DIR = REPO_ROOT / "contracts" / "artifacts"
BUILD_SCRIPT = REPO_ROOT / "contracts" / "build.py"
PACKAGE_JSON = REPO_ROOT / "contracts" / "package.json"

ERROR_STRING_SELECTOR = function_signature_to_4byte_selector("Error(string)")


def _opcodes(code: bytes) -> list[int]:
    """Opcodes of ``code``, skipping PUSH1..PUSH32 immediates."""
    ops, pc = [], 0
    while pc < len(code):
        op = code[pc]
        ops.append(op)
        pc += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops


# --------------------------------------------------------------------------- (a) artifacts


def test_counter_artifact_loads_and_is_well_formed():
    art = load_artifact("Counter")
    assert set(art) == {
        "contractName",
        "sourceName",
        "compiler",
        "evmVersion",
        "abi",
        "bytecode",
        "deployedBytecode",
    }
    assert art["contractName"] == "Counter"
    assert art["sourceName"] == "src/Counter.sol"
    assert art["evmVersion"] == "prague"
    pinned = json.loads(PACKAGE_JSON.read_text())["devDependencies"]["solc"]
    assert art["compiler"]["version"].startswith(pinned + "+commit.")

    assert art["abi"], "empty ABI"
    names = {entry.get("name") for entry in art["abi"]}
    assert {"count", "owner", "increment", "set", "fail", "reset"} <= names
    assert {"Incremented", "CountSet", "NotOwner"} <= names

    for key in ("bytecode", "deployedBytecode"):
        assert art[key].startswith("0x")
        assert len(art[key]) > 2, f"empty {key}"
        bytes.fromhex(art[key][2:])

    # Shanghai+ codegen (PUSH0) and no CBOR metadata trailer ("a2 64 'ipfs'/'solc'").
    runtime = bytes.fromhex(art["deployedBytecode"][2:])
    assert 0x5F in _opcodes(runtime), "expected PUSH0 in prague-targeted bytecode"
    assert b"solc" not in runtime and b"ipfs" not in runtime


def test_the_package_data_in_a_checkout_is_the_committed_artifacts_directory():
    # rxledger/core/_artifacts is a link to contracts/artifacts: one set of files, no copy
    # to keep in step (the wheel carries copies: tests/integration/test_install.py).
    link = REPO_ROOT / "rxledger" / "core" / "_artifacts"
    assert link.is_symlink()
    assert ARTIFACTS_DIR.resolve() == COMMITTED_DIR.resolve()


def test_every_artifact_file_loads():
    files = sorted(COMMITTED_DIR.glob("*.json"))
    assert {p.stem for p in files} >= {"AnchorRegistry", "Counter", "Governance", "PrescriptionRegistry"}
    for path in files:
        art = load_artifact(path.stem)
        assert art["contractName"] == path.stem
        assert art["evmVersion"] == "prague"
        raw = path.read_text()
        assert raw == json.dumps(art, sort_keys=True, indent=2) + "\n"


def test_load_artifact_missing_names_path():
    with pytest.raises(FileNotFoundError) as info:
        load_artifact("DoesNotExist")
    assert str(ARTIFACTS_DIR / "DoesNotExist.json") in str(info.value)


@pytest.mark.parametrize("bad", ["", "../Counter", "Counter.json", "a/b", "1abc"])
def test_load_artifact_rejects_bad_names(bad):
    with pytest.raises(ValueError):
        load_artifact(bad)


# --------------------------------------------------------------------------- (b) rebuild


@pytest.mark.timeout(300)
def test_artifacts_rebuild_byte_identical():
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not on PATH: cannot run solcjs to rebuild contract artifacts")
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, (
        f"contracts/build.py --check failed (exit {result.returncode}):\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


# --------------------------------------------------------------------------- (c) py-evm


CHAIN_ID = 1337


class _PragueChain:
    """Minimal in-memory py-evm chain running only the Prague VM."""

    def __init__(self, *private_keys: keys.PrivateKey) -> None:
        from eth import constants
        from eth.chains.base import MiningChain
        from eth.db.atomic import AtomicDB
        from eth.vm.forks.prague import PragueVM

        chain_class = MiningChain.configure(
            __name__="PragueTestChain",
            vm_configuration=((constants.GENESIS_BLOCK_NUMBER, PragueVM),),
            chain_id=CHAIN_ID,
        )
        genesis_params = {
            "coinbase": constants.ZERO_ADDRESS,
            "difficulty": 0,
            "gas_limit": 30_000_000,
            "timestamp": 1_700_000_000,
            "extra_data": b"",
            "nonce": b"\x00" * 8,
        }
        genesis_state = {
            key.public_key.to_canonical_address(): {
                "balance": to_wei(100, "ether"),
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for key in private_keys
        }
        self.chain = chain_class.from_genesis(AtomicDB(), genesis_params, genesis_state)
        assert isinstance(self.chain.get_vm(), PragueVM)

    def send(self, key: keys.PrivateKey, to: bytes, data: bytes):
        sender = key.public_key.to_canonical_address()
        nonce = self.chain.get_vm().state.get_nonce(sender)
        tx = self.chain.create_unsigned_transaction(
            nonce=nonce, gas_price=10**9, gas=1_000_000, to=to, value=0, data=data
        ).as_signed_transaction(key, chain_id=CHAIN_ID)
        _block, receipt, computation = self.chain.apply_transaction(tx)
        return receipt, computation

    def state(self):
        return self.chain.get_vm().state


def _call_data(signature: str, types: list[str] | None = None, args: list | None = None) -> bytes:
    data = function_signature_to_4byte_selector(signature)
    if types:
        data += encode(types, args)
    return data


def _topic_bytes(topic) -> bytes:
    return topic.to_bytes(32, "big") if isinstance(topic, int) else bytes(topic)


@pytest.mark.timeout(30)
def test_counter_deploys_and_runs_on_py_evm_prague():
    from eth._utils.address import generate_contract_address

    owner_key = keys.PrivateKey(b"\x11" * 32)
    other_key = keys.PrivateKey(b"\x22" * 32)
    owner = owner_key.public_key.to_canonical_address()
    other = other_key.public_key.to_canonical_address()
    chain = _PragueChain(owner_key, other_key)
    art = load_artifact("Counter")

    # Deploy Counter(5).
    init_code = bytes.fromhex(art["bytecode"][2:]) + encode(["uint256"], [5])
    receipt, comp = chain.send(owner_key, b"", init_code)
    assert comp.is_success, comp.error
    contract = generate_contract_address(owner, 0)
    assert chain.state().get_code(contract) == bytes.fromhex(art["deployedBytecode"][2:])

    def view(signature: str, out_type: str):
        _r, c = chain.send(owner_key, contract, _call_data(signature))
        assert c.is_success, c.error
        return decode([out_type], c.output)[0]

    assert view("count()", "uint256") == 5
    assert view("owner()", "address") == "0x" + owner.hex()

    # increment() -> 6, emits Incremented(by=owner, newCount=6).
    receipt, comp = chain.send(owner_key, contract, _call_data("increment()"))
    assert comp.is_success, comp.error
    assert decode(["uint256"], comp.output) == (6,)
    assert view("count()", "uint256") == 6
    assert len(receipt.logs) == 1
    log = receipt.logs[0]
    assert log.address == contract
    topics = [_topic_bytes(t) for t in log.topics]
    assert topics[0] == keccak(text="Incremented(address,uint256)")
    assert topics[1] == b"\x00" * 12 + owner
    assert decode(["uint256"], log.data) == (6,)

    # fail() reverts with Error(string) "Counter: always fails".
    receipt, comp = chain.send(owner_key, contract, _call_data("fail()"))
    assert comp.is_error
    assert comp.output[:4] == ERROR_STRING_SELECTOR
    assert decode(["string"], comp.output[4:]) == ("Counter: always fails",)
    assert receipt.logs == ()

    # set(): require() message above the limit, CountSet event otherwise.
    _r, comp = chain.send(owner_key, contract, _call_data("set(uint256)", ["uint256"], [1_000_001]))
    assert comp.is_error
    assert comp.output[:4] == ERROR_STRING_SELECTOR
    assert decode(["string"], comp.output[4:]) == ("Counter: value too large",)
    receipt, comp = chain.send(other_key, contract, _call_data("set(uint256)", ["uint256"], [42]))
    assert comp.is_success, comp.error
    (log,) = receipt.logs
    assert _topic_bytes(log.topics[0]) == keccak(text="CountSet(address,uint256,uint256)")
    assert _topic_bytes(log.topics[1]) == b"\x00" * 12 + other
    assert decode(["uint256", "uint256"], log.data) == (6, 42)

    # reset(): custom error NotOwner(caller) for non-owners, zeroes count for the owner.
    _r, comp = chain.send(other_key, contract, _call_data("reset()"))
    assert comp.is_error
    assert comp.output[:4] == function_signature_to_4byte_selector("NotOwner(address)")
    assert decode(["address"], comp.output[4:]) == ("0x" + other.hex(),)
    assert view("count()", "uint256") == 42
    _r, comp = chain.send(owner_key, contract, _call_data("reset()"))
    assert comp.is_success, comp.error
    assert view("count()", "uint256") == 0
