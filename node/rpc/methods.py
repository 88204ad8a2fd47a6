"""The JSON-RPC methods (INTERFACES.md, "Ethereum JSON-RPC").

Each method takes the node and the positional params and returns a JSON value, or
raises `InvalidParams` / a node error. Parameter parsing is strict and names the
parameter that is wrong, so a client learns what to fix.

A method parses its params, asks `NodeService` (the node's only API for this layer) and
formats the answer with `rxledger.core.wire`; it reads nothing of the chain, executor,
store or pool itself.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from typing import Any

from node import __version__
from node.rpc.errors import SERVER_ERROR, InvalidParams, RpcError
from node.service import CallRequest, LogFilter, NodeService
from rxledger.core.errors import NodeError, TxPoolRefused
from rxledger.core.types.headers import Header
from rxledger.core.wire import d, format_block, format_log, format_receipt, format_transaction, q

Method = Callable[[NodeService, list[Any]], Any]
METHODS: dict[str, Method] = {}
# Who may call what: every method belongs to one group (INTERFACES.md, "Access control":
# the groups are the credential scopes read, tx and admin). Today only `admin` is gated,
# by node.toml's `[rpc] admin` (node.rpc.app.handle_one); credentials will check the rest.
READ, TX, ADMIN = "read", "tx", "admin"
METHOD_GROUPS: dict[str, str] = {}

QUANTITY = re.compile(r"^0x(0|[1-9a-fA-F][0-9a-fA-F]*)$")
HEX = re.compile(r"0x[0-9a-fA-F]*")  # fullmatch, with an even length: DATA
BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


def rpc(name: str, group: str = READ) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name] = fn
        METHOD_GROUPS[name] = group
        return fn
    return register


# -- parameter parsing ---------------------------------------------------------------------
def param(params: list[Any], index: int, name: str, *, required: bool = True, default: Any = None) -> Any:
    if index < len(params) and params[index] is not None:
        return params[index]
    if required:
        raise InvalidParams(f"missing value for required argument {index} ({name})")
    return default


def parse_quantity(value: Any, name: str) -> int:
    if isinstance(value, str) and QUANTITY.match(value):
        return int(value, 16)
    raise InvalidParams(f"invalid argument {name}: expected a hex quantity like 0x1a, got {value!r}")


def parse_data(value: Any, name: str) -> bytes:
    if isinstance(value, str) and not len(value) % 2 and HEX.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidParams(f"invalid argument {name}: expected hex data with an even number of digits, got {value!r}")


def parse_fixed(value: Any, name: str, length: int) -> bytes:
    data = parse_data(value, name)
    if len(data) != length:
        raise InvalidParams(f"invalid argument {name}: expected {length} bytes, got {len(data)}")
    return data


def parse_address(value: Any, name: str) -> bytes:
    return parse_fixed(value, name, 20)


def parse_hash(value: Any, name: str) -> bytes:
    return parse_fixed(value, name, 32)


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidParams(f"invalid argument {name}: expected true or false, got {value!r}")


def resolve_block_number(node: NodeService, value: Any, name: str = "block") -> int:
    """A block tag or number (or an EIP-1898 object) → a block number that may not exist."""
    if isinstance(value, dict):
        if "blockHash" in value:
            header = header_by_hash(node, parse_hash(value["blockHash"], name + ".blockHash"))
            return header.number
        if "blockNumber" in value:
            value = value["blockNumber"]
    if value in BLOCK_TAGS:
        return 0 if value == "earliest" else node.head().number
    number = parse_quantity(value, name)
    if number >= 2**64:
        raise InvalidParams(f"invalid argument {name}: block number exceeds 64 bits")
    return number


def header_by_hash(node: NodeService, block_hash: bytes) -> Header:
    block = node.block_by_hash(block_hash)
    if block is None:
        raise RpcError(SERVER_ERROR, f"header not found: no final block 0x{block_hash.hex()}")
    return block.header


def state_header(node: NodeService, params: list[Any], index: int) -> Header:
    """The header whose state a state query reads (default latest)."""
    number = resolve_block_number(node, param(params, index, "block", required=False, default="latest"))
    header = node.header(number)
    if header is None:
        raise RpcError(SERVER_ERROR, f"header not found: block {number} is beyond the head "
                                     f"({node.head().number})")
    return header


# -- chain and client ----------------------------------------------------------------------
@rpc("web3_clientVersion")
def web3_client_version(node: NodeService, params: list[Any]) -> str:
    return f"RxLedger/v{__version__}/{platform.system().lower()}/python{platform.python_version()}"


@rpc("eth_chainId")
def eth_chain_id(node: NodeService, params: list[Any]) -> str:
    return q(node.chain_id)


@rpc("net_version")
def net_version(node: NodeService, params: list[Any]) -> str:
    return str(node.chain_id)


@rpc("net_listening")
def net_listening(node: NodeService, params: list[Any]) -> bool:
    return True


@rpc("eth_blockNumber")
def eth_block_number(node: NodeService, params: list[Any]) -> str:
    return q(node.head().number)


@rpc("eth_syncing")
def eth_syncing(node: NodeService, params: list[Any]) -> bool:
    return False


@rpc("eth_accounts")
def eth_accounts(node: NodeService, params: list[Any]) -> list[str]:
    return []  # the node holds no user keys: clients sign


@rpc("eth_gasPrice")
def eth_gas_price(node: NodeService, params: list[Any]) -> str:
    return "0x0"


@rpc("eth_maxPriorityFeePerGas")
def eth_max_priority_fee(node: NodeService, params: list[Any]) -> str:
    return "0x0"


@rpc("eth_feeHistory")
def eth_fee_history(node: NodeService, params: list[Any]) -> dict[str, Any]:
    count = param(params, 0, "blockCount")
    count = count if isinstance(count, int) and not isinstance(count, bool) else parse_quantity(count, "blockCount")
    newest = resolve_block_number(node, param(params, 1, "newestBlock"), "newestBlock")
    percentiles = param(params, 2, "rewardPercentiles", required=False, default=None)
    if percentiles is not None and (
        not isinstance(percentiles, list)
        or any(not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 100 for p in percentiles)
        or percentiles != sorted(percentiles)
    ):
        raise InvalidParams("invalid argument rewardPercentiles: expected increasing numbers in [0, 100]")
    newest = min(newest, node.head().number)
    count = max(0, min(count, 1024, newest + 1))
    oldest = newest - count + 1
    ratios = []
    for n in range(oldest, newest + 1):
        header = node.header(n)
        assert header is not None
        ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
    out: dict[str, Any] = {
        "oldestBlock": q(oldest if count else newest),
        "baseFeePerGas": ["0x0"] * (count + 1),
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": ["0x0"] * (count + 1),
        "blobGasUsedRatio": [0.0] * count,
    }
    if percentiles is not None:
        out["reward"] = [["0x0"] * len(percentiles) for _ in range(count)]
    return out


# -- blocks --------------------------------------------------------------------------------
@rpc("eth_getBlockByNumber")
def eth_get_block_by_number(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    number = resolve_block_number(node, param(params, 0, "block"))
    full = parse_bool(param(params, 1, "hydrated", required=False, default=False), "hydrated")
    block = node.block(number)
    return None if block is None else format_block(block, full)


@rpc("eth_getBlockByHash")
def eth_get_block_by_hash(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    block_hash = parse_hash(param(params, 0, "blockHash"), "blockHash")
    full = parse_bool(param(params, 1, "hydrated", required=False, default=False), "hydrated")
    block = node.block_by_hash(block_hash)
    return None if block is None else format_block(block, full)


@rpc("eth_getBlockTransactionCountByNumber")
def eth_get_block_tx_count_by_number(node: NodeService, params: list[Any]) -> str | None:
    block = node.block(resolve_block_number(node, param(params, 0, "block")))
    return None if block is None else q(len(block.transactions))


@rpc("eth_getBlockTransactionCountByHash")
def eth_get_block_tx_count_by_hash(node: NodeService, params: list[Any]) -> str | None:
    block = node.block_by_hash(parse_hash(param(params, 0, "blockHash"), "blockHash"))
    return None if block is None else q(len(block.transactions))


# -- transactions and receipts -------------------------------------------------------------
@rpc("eth_sendRawTransaction", TX)
def eth_send_raw_transaction(node: NodeService, params: list[Any]) -> str:
    value = param(params, 0, "transaction")
    limit = node.config.pool.max_tx_size
    if isinstance(value, str) and len(value) > 2 + 2 * limit:  # refused before hex- or RLP-decoding
        raise TxPoolRefused(f"oversized transaction: {(len(value) - 1) // 2} bytes, the limit is {limit}")
    raw = parse_data(value, "transaction")
    return d(node.submit_raw_transaction(raw))


@rpc("eth_getTransactionByHash")
def eth_get_transaction_by_hash(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    tx_hash = parse_hash(param(params, 0, "transactionHash"), "transactionHash")
    loc = node.transaction(tx_hash)
    if loc is not None:
        return format_transaction(loc.block.transactions[loc.index], loc.block, loc.index)
    waiting = node.pending_transaction(tx_hash)
    return None if waiting is None else format_transaction(waiting, None, None)


@rpc("eth_getTransactionByBlockNumberAndIndex")
def eth_get_tx_by_block_number_and_index(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    block = node.block(resolve_block_number(node, param(params, 0, "block")))
    index = parse_quantity(param(params, 1, "index"), "index")
    if block is None or index >= len(block.transactions):
        return None
    return format_transaction(block.transactions[index], block, index)


@rpc("eth_getTransactionByBlockHashAndIndex")
def eth_get_tx_by_block_hash_and_index(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    block = node.block_by_hash(parse_hash(param(params, 0, "blockHash"), "blockHash"))
    index = parse_quantity(param(params, 1, "index"), "index")
    if block is None or index >= len(block.transactions):
        return None
    return format_transaction(block.transactions[index], block, index)


@rpc("eth_getTransactionReceipt")
def eth_get_transaction_receipt(node: NodeService, params: list[Any]) -> dict[str, Any] | None:
    tx_hash = parse_hash(param(params, 0, "transactionHash"), "transactionHash")
    loc = node.transaction(tx_hash)
    if loc is None:
        return None  # not final (yet): a receipt exists only for a final block
    return format_receipt(loc.receipt, loc.block, loc.index, loc.cumulative_before, loc.log_index_before)


@rpc("eth_getBlockReceipts")
def eth_get_block_receipts(node: NodeService, params: list[Any]) -> list[dict[str, Any]] | None:
    block = node.block(resolve_block_number(node, param(params, 0, "block")))
    if block is None:
        return None
    receipts = node.receipts(block.hash) or []
    out, gas_before, logs_before = [], 0, 0
    for index, receipt in enumerate(receipts):
        out.append(format_receipt(receipt, block, index, gas_before, logs_before))
        gas_before = receipt.cumulative_gas_used
        logs_before += len(receipt.logs)
    return out


# -- state ---------------------------------------------------------------------------------
@rpc("eth_getTransactionCount")
def eth_get_transaction_count(node: NodeService, params: list[Any]) -> str:
    address = parse_address(param(params, 0, "address"), "address")
    if param(params, 1, "block", required=False, default="latest") == "pending":
        return q(node.pending_nonce(address))
    header = state_header(node, params, 1)
    return q(node.nonce(address, header))


@rpc("eth_getBalance")
def eth_get_balance(node: NodeService, params: list[Any]) -> str:
    address = parse_address(param(params, 0, "address"), "address")
    header = state_header(node, params, 1)
    return q(node.balance(address, header))


@rpc("eth_getCode")
def eth_get_code(node: NodeService, params: list[Any]) -> str:
    address = parse_address(param(params, 0, "address"), "address")
    header = state_header(node, params, 1)
    return d(node.code(address, header))


@rpc("eth_getStorageAt")
def eth_get_storage_at(node: NodeService, params: list[Any]) -> str:
    address = parse_address(param(params, 0, "address"), "address")
    slot_param = param(params, 1, "slot")
    if isinstance(slot_param, str) and HEX.fullmatch(slot_param) and len(slot_param) == 66:
        slot = int(slot_param, 16)
    else:
        slot = parse_quantity(slot_param, "slot")
    if slot >= 2**256:
        raise InvalidParams("invalid argument slot: exceeds 256 bits")
    header = state_header(node, params, 2)
    value = node.storage(address, slot, header)
    return d(value.to_bytes(32, "big"))


def _call_request(call: Any) -> CallRequest:
    if not isinstance(call, dict):
        raise InvalidParams("invalid argument transaction: expected an object with to, data, ...")
    data_field = call.get("input", call.get("data"))
    to = call.get("to")
    return CallRequest(
        sender=parse_address(call["from"], "transaction.from") if call.get("from") else b"\x00" * 20,
        to=parse_address(to, "transaction.to") if to is not None else b"",  # b"": creation
        data=parse_data(data_field, "transaction.input") if data_field is not None else b"",
        value=parse_quantity(call["value"], "transaction.value") if call.get("value") else 0,
        gas=parse_quantity(call["gas"], "transaction.gas") if call.get("gas") else None,
    )


def _follows_head(params: list[Any]) -> bool:
    """Whether a call was asked of the latest block (so it may run again on a new head)."""
    return param(params, 1, "block", required=False, default="latest") in ("latest", "pending", "safe", "finalized")


@rpc("eth_call")
def eth_call(node: NodeService, params: list[Any]) -> str:
    request = _call_request(param(params, 0, "transaction"))
    header = state_header(node, params, 1)
    if request.gas is not None and request.gas > header.gas_limit:
        raise InvalidParams(f"invalid argument transaction.gas: {request.gas} exceeds the block gas limit "
                            f"{header.gas_limit}")
    return d(node.call(request, header, follow_head=_follows_head(params)))


@rpc("eth_estimateGas")
def eth_estimate_gas(node: NodeService, params: list[Any]) -> str:
    request = _call_request(param(params, 0, "transaction"))
    header = state_header(node, params, 1)
    return q(node.estimate_gas(request, header, follow_head=_follows_head(params)))


# -- logs ----------------------------------------------------------------------------------
def _topic_filter(topics: Any, limit: int) -> tuple[frozenset[bytes] | None, ...]:
    if topics is None:
        return ()
    if not isinstance(topics, list) or len(topics) > 4:
        raise InvalidParams("invalid argument filter.topics: expected a list of at most 4 entries")
    out: list[frozenset[bytes] | None] = []
    for i, entry in enumerate(topics):
        if entry is None:
            out.append(None)
        elif isinstance(entry, list):
            if len(entry) > limit:
                raise InvalidParams(f"invalid argument filter.topics[{i}]: {len(entry)} alternatives, "
                                    f"the limit is {limit} per position ([limits] max_logs_topics)")
            out.append(frozenset(parse_hash(t, f"filter.topics[{i}]") for t in entry) or None)
        else:
            out.append(frozenset({parse_hash(entry, f"filter.topics[{i}]")}))
    return tuple(out)


@rpc("eth_getLogs")
def eth_get_logs(node: NodeService, params: list[Any]) -> list[dict[str, Any]]:
    flt = param(params, 0, "filter")
    if not isinstance(flt, dict):
        raise InvalidParams("invalid argument filter: expected an object")
    addresses_param = flt.get("address")
    addresses: frozenset[bytes] | None
    if addresses_param is None:
        addresses = None
    elif isinstance(addresses_param, list):
        limit = node.config.max_logs_addresses
        if len(addresses_param) > limit:
            raise InvalidParams(f"invalid argument filter.address: {len(addresses_param)} addresses, "
                                f"the limit is {limit} ([limits] max_logs_addresses)")
        addresses = frozenset(parse_address(a, "filter.address") for a in addresses_param)
    else:
        addresses = frozenset({parse_address(addresses_param, "filter.address")})
    topics = _topic_filter(flt.get("topics"), node.config.max_logs_topics)
    if flt.get("blockHash") is not None:
        if flt.get("fromBlock") is not None or flt.get("toBlock") is not None:
            raise InvalidParams("invalid argument filter: blockHash cannot be combined with fromBlock/toBlock")
        query = LogFilter(addresses, topics, block_hash=parse_hash(flt["blockHash"], "filter.blockHash"))
    else:
        start = resolve_block_number(node, flt.get("fromBlock") or "latest", "filter.fromBlock")
        end = resolve_block_number(node, flt.get("toBlock") or "latest", "filter.toBlock")
        query = LogFilter(addresses, topics, from_block=start, to_block=end)
    return [format_log(m.log, m.block, m.transaction, m.tx_index, m.log_index) for m in node.logs(query)]


# -- QBFT ----------------------------------------------------------------------------------
@rpc("qbft_getValidatorsByBlockNumber")
def qbft_get_validators_by_block_number(node: NodeService, params: list[Any]) -> list[str]:
    number = resolve_block_number(node, param(params, 0, "block"))
    header = node.header(number)
    if header is None:
        raise RpcError(SERVER_ERROR, f"header not found: block {number} is beyond the head")
    return [d(v) for v in header.extra.validators]


@rpc("qbft_getPendingVotes")
def qbft_get_pending_votes(node: NodeService, params: list[Any]) -> dict[str, bool]:
    return {d(v): add for v, add in node.pending_votes.items()}


@rpc("qbft_proposeValidatorVote", ADMIN)
def qbft_propose_validator_vote(node: NodeService, params: list[Any]) -> bool:
    validator = parse_address(param(params, 0, "validatorAddress"), "validatorAddress")
    add = parse_bool(param(params, 1, "add"), "add")
    org = param(params, 2, "org", required=False)  # the organisation of a validator to add
    if org is not None and not isinstance(org, str):
        raise InvalidParams(f"invalid argument org: expected an organisation name, got {org!r}")
    try:
        node.propose_vote(validator, add, org)
    except NodeError as exc:
        raise RpcError(SERVER_ERROR, str(exc)) from exc
    return True
