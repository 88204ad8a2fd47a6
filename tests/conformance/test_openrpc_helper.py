"""Tests of the execution-apis schema helper (``tests/conformance/openrpc.py``).

They check the helper itself against hand-written JSON-RPC results.  They do
not test the node.

Required fields per the vendored schemas (upstream commit in
``execution_apis/SOURCE.md``).  ``test_required_fields_are_pinned`` asserts
these lists, so this comment stays in sync with the schemas:

Block (``eth_getBlockBy{Number,Hash}``: ``oneOf [null, Block]``; extra fields allowed)
    required: hash, parentHash, sha3Uncles, miner, stateRoot, transactionsRoot,
        receiptsRoot, logsBloom, number, gasLimit, gasUsed, timestamp, extraData,
        mixHash, nonce, size, transactions, uncles
    optional: difficulty, baseFeePerGas, withdrawalsRoot, withdrawals,
        blobGasUsed, excessBlobGas, parentBeaconBlockRoot, requestsHash,
        blockAccessListHash
    ``transactions`` is anyOf [hash32[], TransactionInfo[]].  ``nonce`` is
    exactly 8 bytes and ``logsBloom`` exactly 256 bytes.

TransactionInfo (``eth_getTransactionBy*``: ``oneOf [null, TransactionInfo]``;
extra fields allowed) = allOf [context, oneOf TransactionSigned by ``type``]
    context required: blockHash, blockNumber, blockTimestamp, from, hash,
        transactionIndex (non-null, so a pending transaction does not conform)
    legacy  (type ^0x0$): type, nonce, gas, value, input, gasPrice, v, r, s
        optional: to (address or null), chainId; v is a uint
    2930    (type ^0x1$): type, nonce, gas, value, input, gasPrice, chainId,
        accessList, yParity, r, s;  optional: to (or null), v (byte)
    1559    (type ^0x2$): type, nonce, gas, value, input, maxFeePerGas,
        maxPriorityFeePerGas, gasPrice, chainId, accessList, yParity, r, s
        optional: to (or null), v (byte)
    4844    (type ^0x3$): type, nonce, to (not null), gas, value, input,
        maxPriorityFeePerGas, maxFeePerGas, maxFeePerBlobGas, accessList,
        blobVersionedHashes, chainId, yParity, r, s
    7702    (type ^0x4$): type, nonce, to (not null), gas, value, input,
        maxPriorityFeePerGas, maxFeePerGas, accessList, chainId,
        authorizationList, yParity, r, s
    r and s are ``uint`` (minimal hex, no leading zeros).  yParity/v of typed
    transactions are ``byte`` (^0x[0-9a-f]{1,2}$).

ReceiptInfo (``eth_getTransactionReceipt``: ``oneOf [null, ReceiptInfo]``;
additionalProperties: false)
    required: blockHash, blockNumber, from, cumulativeGasUsed, gasUsed, logs,
        logsBloom, transactionHash, transactionIndex, effectiveGasPrice
    optional: type (byte), to (address or null), contractAddress (address or
        null), status, root, blobGasUsed, blobGasPrice

Log (items of ``ReceiptInfo.logs`` and of ``eth_getLogs``; additionalProperties: false)
    required: transactionHash
    optional: removed, logIndex, transactionIndex, blockHash, blockNumber,
        blockTimestamp, address, data, topics (bytes32[])
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openrpc import (
    SPEC_DIR,
    component_names,
    component_schema,
    method,
    method_names,
    result_errors,
    result_schema,
    validate_component,
    validate_result,
)

# --------------------------------------------------------------------------
# Hand-written fixtures (shape of a post-Prague JSON-RPC result)
# --------------------------------------------------------------------------

BLOCK_HASH = "0x" + "1b" * 32
PARENT_HASH = "0x" + "2c" * 32
TX_HASH_1559 = "0x" + "3d" * 32
TX_HASH_LEGACY = "0x" + "4e" * 32
SENDER = "0x8ba1f109551bD432803012645Ac136ddd64DBA72"  # EIP-55 checksummed
RECIPIENT = "0x000000000000000000000000000000000000dead"
EMPTY_UNCLES_HASH = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
EMPTY_TRIE_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
EMPTY_REQUESTS_HASH = "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ZERO_BLOOM = "0x" + "00" * 256
BLOCK_NUMBER = "0x1b4"
BLOCK_TIMESTAMP = "0x6853f0c8"


def tx_1559() -> dict[str, Any]:
    """A mined EIP-1559 transaction as returned by ``eth_getTransactionByHash``."""
    return {
        "blockHash": BLOCK_HASH,
        "blockNumber": BLOCK_NUMBER,
        "blockTimestamp": BLOCK_TIMESTAMP,
        "transactionIndex": "0x0",
        "hash": TX_HASH_1559,
        "type": "0x2",
        "chainId": "0x539",
        "nonce": "0x7",
        "from": SENDER,
        "to": RECIPIENT,
        "gas": "0x5208",
        "maxFeePerGas": "0x77359400",
        "maxPriorityFeePerGas": "0x3b9aca00",
        "gasPrice": "0x4a817c80",
        "value": "0xde0b6b3a7640000",
        "input": "0x",
        "accessList": [
            {
                "address": RECIPIENT,
                "storageKeys": ["0x" + "00" * 31 + "01"],
            }
        ],
        "yParity": "0x1",
        "v": "0x1",
        "r": "0x8a6c2f9b3e4d1a07f5c6b2e9d8a7c4b3e2f1a0d9c8b7a6f5e4d3c2b1a0f9e8d7",
        "s": "0x1f2e3d4c5b6a79880796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    }


def tx_legacy() -> dict[str, Any]:
    """A mined EIP-155 legacy transaction (chain id 1337, so v = 0xa96)."""
    return {
        "blockHash": BLOCK_HASH,
        "blockNumber": BLOCK_NUMBER,
        "blockTimestamp": BLOCK_TIMESTAMP,
        "transactionIndex": "0x1",
        "hash": TX_HASH_LEGACY,
        "type": "0x0",
        "chainId": "0x539",
        "nonce": "0x8",
        "from": SENDER,
        "to": None,  # contract creation
        "gas": "0x30d40",
        "gasPrice": "0x4a817c80",
        "value": "0x0",
        "input": "0x6080604052348015600e575f80fd5b50",
        "v": "0xa96",
        "r": "0x2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80919",
        "s": "0x5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4",
    }


def block(full: bool) -> dict[str, Any]:
    """A post-Prague block with both transactions, hydrated or as hashes."""
    txs: list[Any] = [tx_1559(), tx_legacy()] if full else [TX_HASH_1559, TX_HASH_LEGACY]
    return {
        "number": BLOCK_NUMBER,
        "hash": BLOCK_HASH,
        "parentHash": PARENT_HASH,
        "sha3Uncles": EMPTY_UNCLES_HASH,
        "miner": "0x0000000000000000000000000000000000000000",
        "stateRoot": "0x" + "5f" * 32,
        "transactionsRoot": "0x" + "6a" * 32,
        "receiptsRoot": "0x" + "7b" * 32,
        "logsBloom": ZERO_BLOOM,
        "difficulty": "0x0",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x2f2b4",
        "timestamp": BLOCK_TIMESTAMP,
        "extraData": "0xd883010e06846765746888676f312e32322e34856c696e7578",
        "mixHash": "0x" + "8c" * 32,
        "nonce": "0x0000000000000000",
        "size": "0x3e1",
        "baseFeePerGas": "0x7",
        "withdrawalsRoot": EMPTY_TRIE_ROOT,
        "withdrawals": [],
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": "0x" + "9d" * 32,
        "requestsHash": EMPTY_REQUESTS_HASH,
        "transactions": txs,
        "uncles": [],
    }


def log_entry() -> dict[str, Any]:
    """A Transfer event log."""
    return {
        "address": RECIPIENT,
        "topics": [
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
            "0x000000000000000000000000" + SENDER[2:].lower(),
            "0x000000000000000000000000" + RECIPIENT[2:],
        ],
        "data": "0x" + "00" * 31 + "64",
        "blockNumber": BLOCK_NUMBER,
        "blockHash": BLOCK_HASH,
        "blockTimestamp": BLOCK_TIMESTAMP,
        "transactionHash": TX_HASH_1559,
        "transactionIndex": "0x0",
        "logIndex": "0x0",
        "removed": False,
    }


def receipt() -> dict[str, Any]:
    """The receipt of :func:`tx_1559`."""
    return {
        "type": "0x2",
        "status": "0x1",
        "transactionHash": TX_HASH_1559,
        "transactionIndex": "0x0",
        "blockHash": BLOCK_HASH,
        "blockNumber": BLOCK_NUMBER,
        "from": SENDER,
        "to": RECIPIENT,
        "contractAddress": None,
        "cumulativeGasUsed": "0xb3a4",
        "gasUsed": "0xb3a4",
        "effectiveGasPrice": "0x3b9aca07",
        "logs": [log_entry()],
        "logsBloom": "0x" + "00" * 255 + "01",
    }


def assert_rejected(method_name: str, value: Any, *fragments: str) -> str:
    """Assert ``validate_result`` rejects ``value`` and its message has ``fragments``."""
    with pytest.raises(AssertionError) as excinfo:
        validate_result(method_name, value)
    message = str(excinfo.value)
    assert message.startswith(f"{method_name} result does not conform"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def test_vendored_files_present() -> None:
    assert (SPEC_DIR / "SOURCE.md").is_file()
    assert (SPEC_DIR / "LICENSE").is_file()
    assert (SPEC_DIR / "src" / "schemas" / "base-types.yaml").is_file()


@pytest.mark.parametrize(
    "name",
    [
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_getLogs",
        "eth_feeHistory",
        "eth_chainId",
        "eth_blockNumber",
        "eth_getBlockReceipts",
    ],
)
def test_knows_method(name: str) -> None:
    assert name in method_names()
    assert method(name)["name"] == name
    assert isinstance(result_schema(name), dict)


def test_method_names_sorted_and_unique() -> None:
    names = method_names()
    assert names == sorted(set(names))
    assert len(names) > 40
    assert all(n.startswith(("eth_", "debug_", "net_")) for n in names)


def test_unknown_method_raises_key_error() -> None:
    with pytest.raises(KeyError, match="eth_noSuchMethod"):
        result_schema("eth_noSuchMethod")
    with pytest.raises(KeyError, match="eth_noSuchMethod"):
        validate_result("eth_noSuchMethod", "0x1")
    with pytest.raises(KeyError, match="NoSuchSchema"):
        validate_component("NoSuchSchema", {})


def test_returned_schemas_are_copies() -> None:
    result_schema("eth_chainId")["$ref"] = "#/components/schemas/Block"
    component_schema("uint")["pattern"] = ".*"
    validate_result("eth_chainId", "0x539")
    with pytest.raises(AssertionError):
        validate_result("eth_chainId", "0x0539")


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_schema_ref_resolves_to_a_component() -> None:
    names = set(component_names())
    refs = set().union(*(_refs(result_schema(m)) for m in method_names()))
    refs |= set().union(*(_refs(component_schema(n)) for n in names))
    prefix = "#/components/schemas/"
    assert refs and all(r.startswith(prefix) for r in refs), sorted(refs)
    assert {r[len(prefix) :] for r in refs} <= names


def test_validators_build_for_every_method() -> None:
    # Builds (and meta-validates) each method's root document.
    for name in method_names():
        assert isinstance(result_errors(name, None), list)


def test_required_fields_are_pinned() -> None:
    """The field lists in the module docstring; fails if upstream changes them."""
    assert component_schema("Block")["required"] == [
        "hash", "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot",
        "receiptsRoot", "logsBloom", "number", "gasLimit", "gasUsed", "timestamp",
        "extraData", "mixHash", "nonce", "size", "transactions", "uncles",
    ]  # fmt: skip
    assert "additionalProperties" not in component_schema("Block")
    context, signed = component_schema("TransactionInfo")["allOf"]
    assert signed == {"$ref": "#/components/schemas/TransactionSigned"}
    assert context["required"] == [
        "blockHash", "blockNumber", "blockTimestamp", "from", "hash", "transactionIndex",
    ]  # fmt: skip
    assert component_schema("TransactionLegacyUnsigned")["required"] == [
        "type", "nonce", "gas", "value", "input", "gasPrice",
    ]  # fmt: skip
    assert component_schema("TransactionLegacySigned")["allOf"][1]["required"] == ["v", "r", "s"]
    assert component_schema("Transaction1559Unsigned")["required"] == [
        "type", "nonce", "gas", "value", "input", "maxFeePerGas", "maxPriorityFeePerGas",
        "gasPrice", "chainId", "accessList",
    ]  # fmt: skip
    assert component_schema("Transaction1559Signed")["allOf"][1]["required"] == [
        "yParity", "r", "s",
    ]  # fmt: skip
    assert component_schema("ReceiptInfo")["required"] == [
        "blockHash", "blockNumber", "from", "cumulativeGasUsed", "gasUsed", "logs",
        "logsBloom", "transactionHash", "transactionIndex", "effectiveGasPrice",
    ]  # fmt: skip
    assert component_schema("ReceiptInfo")["additionalProperties"] is False
    assert component_schema("Log")["required"] == ["transactionHash"]
    assert component_schema("Log")["additionalProperties"] is False


# --------------------------------------------------------------------------
# Valid results
# --------------------------------------------------------------------------


def test_valid_1559_transaction() -> None:
    validate_result("eth_getTransactionByHash", tx_1559())
    validate_result("eth_getTransactionByBlockNumberAndIndex", tx_1559())


def test_valid_1559_contract_creation_without_v() -> None:
    tx = tx_1559()
    tx["to"] = None
    del tx["v"]  # v is optional for typed transactions; yParity is required
    validate_result("eth_getTransactionByHash", tx)


def test_valid_legacy_transaction() -> None:
    validate_result("eth_getTransactionByHash", tx_legacy())
    tx = tx_legacy()
    tx.update(to=RECIPIENT, v="0x1b")  # pre-EIP-155, no chainId
    del tx["chainId"]
    validate_result("eth_getTransactionByHash", tx)


def test_not_found_is_null() -> None:
    for name in ("eth_getTransactionByHash", "eth_getTransactionReceipt", "eth_getBlockByNumber"):
        validate_result(name, None)


@pytest.mark.parametrize("full", [True, False], ids=["full-transactions", "hashes"])
def test_valid_block(full: bool) -> None:
    validate_result("eth_getBlockByNumber", block(full))
    validate_result("eth_getBlockByHash", block(full))


def test_valid_block_minimal_and_with_extra_fields() -> None:
    b = block(full=False)
    for optional in ("difficulty", "baseFeePerGas", "withdrawalsRoot", "withdrawals",
                     "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash"):  # fmt: skip
        del b[optional]
    b["transactions"] = []
    b["totalDifficulty"] = "0x0"  # not in the schema, but Block allows extra fields
    validate_result("eth_getBlockByNumber", b)


def test_valid_block_with_withdrawal() -> None:
    b = block(full=False)
    b["withdrawals"] = [
        {
            "index": "0x0",
            "validatorIndex": "0x9d8c0",
            "address": RECIPIENT,
            "amount": "0x11a33e3760",
        }
    ]
    validate_result("eth_getBlockByNumber", b)


def test_valid_receipt() -> None:
    validate_result("eth_getTransactionReceipt", receipt())
    validate_result("eth_getBlockReceipts", [receipt()])


def test_valid_contract_creation_receipt() -> None:
    r = receipt()
    r.update(to=None, contractAddress=RECIPIENT, logs=[], logsBloom=ZERO_BLOOM, type="0x0")
    validate_result("eth_getTransactionReceipt", r)


def test_valid_logs() -> None:
    validate_result("eth_getLogs", [log_entry()])
    validate_result("eth_getFilterChanges", [log_entry()])
    validate_component("Log", log_entry())
    validate_component("Log", {"transactionHash": TX_HASH_1559})  # only required field


def test_empty_logs_is_ambiguous_under_strict_one_of() -> None:
    # FilterResults = oneOf [hash32[], Log[]]: [] matches both branches.
    message = assert_rejected(
        "eth_getLogs", [], "more than one oneOf branch", "allow_ambiguous_one_of"
    )
    assert "'new logs'" in message
    validate_result("eth_getLogs", [], allow_ambiguous_one_of=True)
    validate_result("eth_getFilterChanges", [TX_HASH_1559])


def test_valid_scalars_and_fee_history() -> None:
    validate_result("eth_chainId", "0x539")
    validate_result("eth_blockNumber", "0x0")
    validate_result(
        "eth_feeHistory",
        {
            "oldestBlock": "0x1b2",
            "baseFeePerGas": ["0x7", "0x7", "0x7"],
            "gasUsedRatio": [0, 0.5],
            "reward": [["0x0", "0x3b9aca00"], ["0x0", "0x0"]],
        },
    )


# --------------------------------------------------------------------------
# Rejected results
# --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0x01", "0x", "1", "0X1", "0x1\n", " 0x1", 1, "0xA"])
def test_quantity_must_be_minimal_lowercase_hex(value: Any) -> None:
    assert_rejected("eth_chainId", value, "$:")


@pytest.mark.parametrize(
    "field", ["hash", "blockTimestamp", "blockHash", "yParity", "r", "maxFeePerGas", "chainId"]
)
def test_1559_transaction_missing_required_field(field: str) -> None:
    tx = tx_1559()
    del tx[field]
    message = assert_rejected("eth_getTransactionByHash", tx, f"'{field}' is a required property")
    if field in {"yParity", "r", "maxFeePerGas", "chainId"}:
        # The type discriminator selects the EIP-1559 branch; the others are
        # listed as not applicable instead of drowning the real problem.
        assert "oneOf #2 Transaction1559Signed:\n" in message, message
        assert "Transaction7702Signed: not applicable ($.type: '0x2' does not match" in message
        assert message.splitlines()[1] == f"most relevant: $: '{field}' is a required property"


def test_legacy_transaction_missing_v() -> None:
    tx = tx_legacy()
    del tx["v"]
    assert_rejected(
        "eth_getTransactionByHash",
        tx,
        "oneOf #4 TransactionLegacySigned:",
        "'v' is a required property",
    )


def test_pending_transaction_is_not_a_transaction_info() -> None:
    tx = tx_1559()
    tx.update(blockHash=None, blockNumber=None, blockTimestamp=None, transactionIndex=None)
    assert_rejected("eth_getTransactionByHash", tx, "$.blockHash: expected type 'string', got null")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("r", "0x0a6c2f9b3e4d1a07f5c6b2e9d8a7c4b3e2f1a0d9c8b7a6f5e4d3c2b1a0f9e8d7"),  # leading 0
        ("nonce", "0x07"),
        ("gas", 21000),
        ("hash", TX_HASH_1559[:-2]),  # 31 bytes
        ("hash", TX_HASH_1559.upper().replace("0X", "0x")),  # hashes are lowercase
        ("from", "0x8ba1f109551bd432803012645ac136ddd64dba7"),  # 19.5 bytes
        ("yParity", "0x100"),
        ("type", "0x02"),
    ],
)
def test_1559_transaction_bad_value(field: str, value: Any) -> None:
    tx = tx_1559()
    tx[field] = value
    assert_rejected("eth_getTransactionByHash", tx, f"$.{field}")


def test_unknown_transaction_type_lists_every_branch() -> None:
    tx = tx_1559()
    tx["type"] = "0x7"
    message = assert_rejected("eth_getTransactionByHash", tx)
    for label in ("Transaction7702Signed", "Transaction4844Signed", "Transaction1559Signed",
                  "Transaction2930Signed", "TransactionLegacySigned"):  # fmt: skip
        assert f"{label}: $.type: '0x7' does not match" in message, message


@pytest.mark.parametrize("full", [True, False], ids=["full-transactions", "hashes"])
@pytest.mark.parametrize(
    "field", ["hash", "miner", "logsBloom", "mixHash", "nonce", "size", "uncles", "transactions"]
)
def test_block_missing_required_field(full: bool, field: str) -> None:
    b = block(full)
    del b[field]
    assert_rejected("eth_getBlockByNumber", b, f"'{field}' is a required property")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "0x01b4"),
        ("nonce", "0x0"),  # bytes8: exactly 16 hex digits
        ("logsBloom", "0x00"),
        ("parentHash", PARENT_HASH + "00"),
        ("stateRoot", "0x" + "5F" * 32),
        ("extraData", "0xABCD"),
        ("baseFeePerGas", "0x"),
        ("requestsHash", None),
        ("withdrawals", [{"index": "0x0", "validatorIndex": "0x1", "address": RECIPIENT}]),
        ("uncles", [PARENT_HASH[:-1]]),
    ],
)
def test_block_bad_value(field: str, value: Any) -> None:
    b = block(full=False)
    b[field] = value
    assert_rejected("eth_getBlockByNumber", b, f"$.{field}")


def test_block_with_bad_full_transaction_points_at_it() -> None:
    b = block(full=True)
    b["transactions"][1]["gasPrice"] = "0x04a817c80"
    message = assert_rejected(
        "eth_getBlockByNumber",
        b,
        "anyOf #0 'Transaction hashes':",
        "anyOf #1 'Full transactions':",
        "oneOf #4 TransactionLegacySigned:",
        "$.transactions[1].gasPrice: '0x04a817c80' does not match",
    )
    assert "most relevant: $.transactions[1].gasPrice" in message


def test_block_mixing_hashes_and_objects_is_rejected() -> None:
    b = block(full=True)
    b["transactions"][1] = TX_HASH_LEGACY
    assert_rejected("eth_getBlockByNumber", b, "$.transactions")


@pytest.mark.parametrize("field", ["blockHash", "from", "logs", "logsBloom", "effectiveGasPrice",
                                   "cumulativeGasUsed", "transactionIndex"])  # fmt: skip
def test_receipt_missing_required_field(field: str) -> None:
    r = receipt()
    del r[field]
    assert_rejected("eth_getTransactionReceipt", r, f"'{field}' is a required property")


def test_receipt_rejects_unknown_fields_and_bad_values() -> None:
    r = receipt()
    r["blockTimestamp"] = BLOCK_TIMESTAMP  # not a ReceiptInfo property
    assert_rejected("eth_getTransactionReceipt", r, "'blockTimestamp' was unexpected")
    r = receipt()
    r["status"] = "0x01"
    assert_rejected("eth_getTransactionReceipt", r, "$.status: '0x01' does not match")
    r = receipt()
    r["logs"][0]["topics"].append("0x1234")
    assert_rejected("eth_getTransactionReceipt", r, "$.logs[0].topics[3]: '0x1234' does not match")


def test_every_violation_is_listed() -> None:
    r = receipt()
    del r["gasUsed"]
    r["blockNumber"] = "0x01b4"
    r["logs"][0]["logIndex"] = "0x00"
    r["extra"] = True
    message = assert_rejected(
        "eth_getTransactionReceipt",
        r,
        "'gasUsed' is a required property",
        "$.blockNumber: '0x01b4' does not match",
        "$.logs[0].logIndex: '0x00' does not match",
        "'extra' was unexpected",
    )
    assert "oneOf #0 notFound: not applicable (expected type 'null', got object)" in message
    assert len(message) < 2000, message  # no multi-kilobyte reprs


def test_result_errors_is_empty_for_valid_result() -> None:
    assert result_errors("eth_getTransactionReceipt", receipt()) == []
    errors = result_errors("eth_chainId", "0x01")
    assert errors == ["- $: '0x01' does not match '^0x(0|[1-9a-f][0-9a-f]*)$'"]


def test_validate_component_message() -> None:
    bad = copy.deepcopy(log_entry())
    bad["data"] = "0xZZ"
    with pytest.raises(AssertionError, match=r"schema Log:\n- \$\.data: '0xZZ' does not match"):
        validate_component("Log", bad)
