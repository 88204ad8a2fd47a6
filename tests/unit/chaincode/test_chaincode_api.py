"""The chaincode API (chaincode_py.api): ABI dispatch from the artifacts, events, reverts,
records, gas; and a chaincode written with it for another artifact (Counter), compared
with its Solidity twin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chaincode_py import NativeChaincodeHost

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts"))
from chaincode_twin import TwinContract, TwinHarness  # noqa: E402
from solidity_harness import Abi, abi_type  # noqa: E402

from chaincode_py import (  # noqa: E402
    Chaincode,
    Context,
    EventDef,
    Gas,
    Layout,
    abi,
    error_data,
)
from chaincode_py.anchors import AnchorRegistry  # noqa: E402
from chaincode_py.api import Meter, OutOfGas, Revert, WriteProtection  # noqa: E402
from chaincode_py.governance import Governance  # noqa: E402
from chaincode_py.prescriptions import PrescriptionRegistry  # noqa: E402
from node.chain import Chain  # noqa: E402
from node.genesis import dev_genesis  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from rxledger.core.artifacts import load_artifact  # noqa: E402
from rxledger.core.types import Log  # noqa: E402

COUNTER_ADDRESS = bytes.fromhex("0000000000000000000000000000000000001fff")


# ------------------------------------------------------------------------------- dispatch
@pytest.mark.parametrize("cls", [PrescriptionRegistry, Governance, AnchorRegistry])
def test_the_dispatch_table_is_the_solidity_artifacts_abi(cls: type[Chaincode]) -> None:
    entries = load_artifact(cls.artifact)["abi"]
    expected = {}
    for e in entries:
        if e["type"] == "function":
            sig = f"{e['name']}({','.join(abi_type(i) for i in e['inputs'])})"
            expected[keccak(text=sig)[:4]] = (sig, e["stateMutability"])
    assert {sel: (f.signature, f.mutability) for sel, f in cls.functions.items()} == expected
    events = {e["name"] for e in entries if e["type"] == "event"}
    assert set(cls.events) == events


def test_a_chaincode_must_implement_exactly_its_abi() -> None:
    with pytest.raises(TypeError, match=r"does not implement anchoredAt\(bytes32\)"):
        class Partial(Chaincode):
            artifact = "AnchorRegistry"
            address = b"\x00" * 19 + b"\x01"

            @abi("anchor")
            def anchor(self, ctx: Context, root: bytes, size: int, meta: bytes) -> None: ...

            @abi("governance")
            def governance(self, ctx: Context) -> bytes: return b"\x00" * 20
    with pytest.raises(TypeError, match="which its ABI does not have"):
        class Extra(AnchorRegistry):
            @abi("unanchor")
            def unanchor(self, ctx: Context, root: bytes) -> None: ...


# ------------------------------------------------------------------------- context pieces
class DictState:
    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}

    def read(self, key: bytes) -> bytes:
        return self.values.get(key, b"")

    def write(self, key: bytes, value: bytes) -> bytes:
        previous = self.read(key)
        if value:
            self.values[key] = value
        else:
            self.values.pop(key, None)
        return previous


def context(gas: int = 10**9, static: bool = False, address: bytes = b"\x00" * 18 + b"\x10\x01") -> Context:
    return Context(DictState(), Meter(gas), address=address, sender=b"\x11" * 20, origin=b"\x11" * 20,
                   value=0, block_number=5, timestamp=1000, chain_id=2024, static=static, prefix=b"c" + address)


def test_typed_storage_round_trips_and_zero_deletes() -> None:
    ctx = context()
    ctx.put_uint(b"u", 2**200 + 5)
    ctx.put_bytes32(b"h", keccak(b"x"))
    ctx.put_address(b"a", b"\x22" * 20)
    ctx.put_bool(b"b", True)
    ctx.put_bytes(b"raw", b"hello")
    assert (ctx.get_uint(b"u"), ctx.get_bytes32(b"h"), ctx.get_address(b"a"), ctx.get_bool(b"b"),
            ctx.get_bytes(b"raw")) == (2**200 + 5, keccak(b"x"), b"\x22" * 20, True, b"hello")
    state = ctx._state
    assert isinstance(state, DictState) and len(state.values) == 5
    assert all(k.startswith(b"c" + ctx.address) for k in state.values)  # the chaincode's namespace
    ctx.put_uint(b"u", 0)
    ctx.put_bytes32(b"h", b"\x00" * 32)
    ctx.put_address(b"a", b"\x00" * 20)
    ctx.put_bool(b"b", False)
    ctx.put_bytes(b"raw", b"")
    assert state.values == {}
    assert (ctx.get_uint(b"u"), ctx.get_bytes32(b"h"), ctx.get_address(b"a"), ctx.get_bool(b"b")) == (
        0, b"\x00" * 32, b"\x00" * 20, False)
    with pytest.raises(ValueError):
        ctx.put_uint(b"u", -1)


def test_records_are_packed_and_absent_reads_as_zeros() -> None:
    layout = Layout(("id", "bytes32"), ("who", "address"), ("n", "uint16"), ("ok", "bool"), ("t", "uint64"))
    assert layout.size == 32 + 20 + 2 + 1 + 8
    assert layout.decode(b"") == (b"\x00" * 32, b"\x00" * 20, 0, False, 0)
    values = (keccak(b"i"), b"\x01" * 20, 65535, True, 2**64 - 1)
    assert layout.decode(layout.encode(values)) == values
    assert layout.encode(layout.zero) == b""  # all zeros: the key is deleted
    with pytest.raises(TypeError):
        Layout(("x", "string"))


def test_events_have_solidity_topics_and_data() -> None:
    ctx = context()
    issued = PrescriptionRegistry.events["Issued"]
    assert issued.signature == "Issued(bytes32,bytes32,address,bytes32,uint8,bytes32)"
    assert issued.topic0 == keccak(text=issued.signature)
    rid, hospital, patient, commitment = (keccak(text=t) for t in "rhpc")
    ctx.emit(issued, rid, hospital, b"\x33" * 20, patient, 2, commitment)
    ctx.emit("StatusChanged", rid, 0, 1, b"\x33" * 20, b"\x00" * 32)  # by name, from the ABI
    ctx.emit("StatusChanged(bytes32,uint8,uint8,address,bytes32)", rid, 1, 2, b"\x33" * 20, b"\x00" * 32)
    first, by_name, by_signature = ctx.logs
    assert first == Log(ctx.address, (issued.topic0, rid, hospital, b"\x00" * 12 + b"\x33" * 20),
                        abi_encode(["bytes32", "uint8", "bytes32"], [patient, 2, commitment]))
    assert by_name.topics == (keccak(text="StatusChanged(bytes32,uint8,uint8,address,bytes32)"), rid)
    assert abi_decode(["uint8", "uint8", "address", "bytes32"], by_signature.data)[:2] == (1, 2)
    # an ABI entry with an indexed string: Solidity logs its hash as the topic
    entry = {"type": "event", "name": "Note", "inputs": [
        {"name": "text", "type": "string", "indexed": True}, {"name": "n", "type": "uint256", "indexed": False}]}
    ctx.emit(entry, "hello", 7)
    assert ctx.logs[-1].topics == (keccak(text="Note(string,uint256)"), keccak(text="hello"))
    assert EventDef.from_signature("Note(string,uint256)", [True, False]).topic0 == ctx.logs[-1].topics[0]
    with pytest.raises(KeyError):
        ctx.emit("NoSuchEvent", 1)
    with pytest.raises(TypeError):
        ctx.emit(issued, rid)


def test_reverts_encode_solidity_errors() -> None:
    ctx = context()
    with pytest.raises(Revert) as exc:
        ctx.require(False, "Rx: zero id")
    assert exc.value.data == bytes.fromhex("08c379a0") + abi_encode(["string"], ["Rx: zero id"])
    assert error_data("Rx: zero id") == exc.value.data
    with pytest.raises(Revert) as exc:
        ctx.revert_error("NotOwner(address)", b"\x44" * 20)
    assert exc.value.data == keccak(text="NotOwner(address)")[:4] + b"\x00" * 12 + b"\x44" * 20
    ctx.require(True, "never")


def test_gas_is_metered_and_static_contexts_cannot_write() -> None:
    ctx = context(gas=Gas.ACCESS + Gas.SET_WORD * 2)
    ctx.put_bytes(b"k", b"x" * 33)  # two words, new
    assert ctx.gas_used == Gas.ACCESS + 2 * Gas.SET_WORD
    with pytest.raises(OutOfGas):
        ctx.get_bytes(b"k")
    ctx = context()
    ctx.put_bytes(b"k", b"a")
    ctx.put_bytes(b"k", b"b")
    ctx.put_bytes(b"k", b"b")
    assert ctx.gas_used == 3 * Gas.ACCESS + Gas.SET_WORD + Gas.RESET_WORD
    assert ctx.keccak(b"x" * 64) == keccak(b"x" * 64)
    static = context(static=True)
    with pytest.raises(WriteProtection):
        static.put_uint(b"k", 1)
    with pytest.raises(WriteProtection):
        static.emit(PrescriptionRegistry.events["StatusChanged"], b"\x00" * 32, 0, 1, b"\x00" * 20, b"\x00" * 32)
    viewer = context().view_of(b"\x00" * 18 + b"\x10\x02")
    assert viewer.static and viewer.sender == b"\x00" * 18 + b"\x10\x01"


def test_native_gas_is_of_the_same_order_as_the_solidity_contracts() -> None:
    from test_chaincode_differential import TwinEnv

    env = TwinEnv()
    h = env.h
    rid = keccak(text="gas")
    data = env.rx.abi.encode_call("issue", (rid, keccak(text="c"), keccak(text="p"), 0, 2, 30, 0, 2**40))
    state = h.chain.head.state_root
    chain_env = h.chain.env_for(h.chain.head, h.now + 1, b"\x01" * 20)
    assert env.rx.native is not None
    gas = [h.chain.executor.estimate_gas(state, chain_env, sender=h.addresses[1], to=to, data=data)
           for to in (env.rx.address, env.rx.native.address)]
    assert 0.5 < gas[1] / gas[0] < 1.5, gas


# --------------------------------------------------------- a chaincode for another artifact
class NativeCounter(Chaincode):
    """Counter.sol natively (owner fixed: the dev deployer, account 9)."""

    artifact = "Counter"
    address = COUNTER_ADDRESS
    owner_address = bytes.fromhex("a0Ee7A142d267C1f36714E4a8F75612F20a79720")

    @abi("count")
    def count(self, ctx: Context) -> int:
        return ctx.get_uint(b"count")

    @abi("owner")
    def owner(self, ctx: Context) -> bytes:
        return self.owner_address

    @abi("increment")
    def increment(self, ctx: Context) -> int:
        new = ctx.get_uint(b"count") + 1
        ctx.put_uint(b"count", new)
        ctx.emit("Incremented", ctx.sender, new)
        return new

    @abi("set")
    def set(self, ctx: Context, value: int) -> None:
        ctx.require(value <= 1_000_000, "Counter: value too large")
        old = ctx.get_uint(b"count")
        ctx.put_uint(b"count", value)
        ctx.emit("CountSet", ctx.sender, old, value)

    @abi("fail")
    def fail(self, ctx: Context) -> None:
        ctx.revert("Counter: always fails")

    @abi("reset")
    def reset(self, ctx: Context) -> None:
        if ctx.sender != self.owner_address:
            ctx.revert_error("NotOwner(address)", ctx.sender)
        ctx.put_uint(b"count", 0)


def test_a_chaincode_for_another_artifact_matches_its_solidity_twin() -> None:
    h = TwinHarness()
    store = MemoryStore()
    host = NativeChaincodeHost(store, [PrescriptionRegistry(), Governance(), AnchorRegistry(), NativeCounter()])
    h.chain = Chain(store, dev_genesis(), chaincode=host)
    sol = h.deploy("Counter", 0, sender=9)
    native = h.attach("Counter", COUNTER_ADDRESS)
    h.address_map[sol.address] = COUNTER_ADDRESS
    counter = TwinContract("Counter", sol.address, sol.abi, native)
    assert h.transact(counter, "increment", sender=1).output == 1
    assert h.transact(counter, "increment", sender=2).events[0].args["newCount"] == 2
    assert h.transact(counter, "set", 1_000_000, sender=3).status == 1
    assert h.transact(counter, "set", 1_000_001, sender=3).reason == "Counter: value too large"
    assert h.transact(counter, "fail", sender=3).reason == "Counter: always fails"
    refused = h.transact(counter, "reset", sender=1)  # custom error NotOwner(address)
    assert refused.status == 0
    assert h.transact(counter, "reset", sender=9).status == 1
    assert h.call(counter, "count") == 0
    assert h.call(counter, "owner") == h.address(9)
    assert Abi(load_artifact("Counter")["abi"]).signature("set") == "set(uint256)"
    assert h.steps >= 16


def test_a_value_transfer_to_a_chaincode_reverts_and_keeps_the_value() -> None:
    """Non-payable: the sender keeps its balance (the EVM undoes the transfer)."""
    from dataclasses import replace

    from eth_account import Account
    from eth_utils.address import to_checksum_address

    from node.genesis import dev_accounts
    from rxledger.core.types import decode_transaction

    sender = dev_accounts()[1]
    chain = Chain(MemoryStore(), replace(dev_genesis(), balances=((sender.address, 10**18),)), NativeChaincodeHost)
    tx = dict(nonce=0, gasPrice=0, gas=200_000, value=5, chainId=2024,
              to=to_checksum_address(b"\x00" * 18 + b"\x10\x02"),
              data=Abi(load_artifact("Governance")["abi"]).encode_call("orgs", ()))
    stx = decode_transaction(bytes(Account.from_key(sender.private_key).sign_transaction(tx).raw_transaction))
    block, execution = chain.build_block([stx], timestamp=1, proposer=b"\x01" * 20)
    chain.commit_block(block, execution)
    assert execution.receipts[0].status == 0
    assert chain.executor.get_balance(chain.head.state_root, sender.address) == 10**18


# -- one-word codecs (api._word_encoder / _word_decoder) against eth_abi ---------------------
WORD_TYPES = ("bytes32", "uint8", "uint16", "uint32", "uint64", "uint256", "address", "bool")


def _strict_decode(type_str: str, word: bytes) -> tuple[bool, object]:
    from eth_abi.exceptions import DecodingError

    try:
        value = abi_decode([type_str], word, strict=True)[0]
    except DecodingError:
        return False, None
    return True, bytes.fromhex(value[2:]) if type_str == "address" else value


def _word_decode(type_str: str, word: bytes) -> tuple[bool, object]:
    from chaincode_py.api import _word_decoder

    decode = _word_decoder(type_str)
    assert decode is not None
    try:
        return True, decode(word)
    except Revert as exc:
        assert exc.data == b""
        return False, None


@given(st.sampled_from(WORD_TYPES), st.one_of(
    st.binary(min_size=32, max_size=32),
    st.integers(0, 32).flatmap(lambda n: st.binary(min_size=n, max_size=n).map(lambda b: bytes(32 - n) + b)),
    st.sampled_from((bytes(31) + b"\x01", bytes(31) + b"\x02", bytes(32), b"\x01" + bytes(31)))))
@settings(max_examples=1000, deadline=None)
def test_word_decoders_agree_with_eth_abi_strict(type_str: str, word: bytes) -> None:
    assert _word_decode(type_str, word) == _strict_decode(type_str, word)


@given(st.sampled_from(WORD_TYPES), st.one_of(
    st.integers(0, 2**256 - 1), st.integers(0, 2**70), st.booleans(), st.binary(min_size=20, max_size=20),
    st.binary(min_size=32, max_size=32)))
@settings(max_examples=1000, deadline=None)
def test_word_encoders_agree_with_eth_abi(type_str: str, value: object) -> None:
    from chaincode_py.api import _word_encoder

    encode = _word_encoder(type_str)
    assert encode is not None
    try:
        expected: object = abi_encode([type_str], [value])
    except Exception as exc:  # eth_abi refuses: so must the word encoder (it falls back to it)
        expected = type(exc)
    try:
        got: object = encode(value)
    except Exception as exc:
        got = type(exc)
    assert got == expected
