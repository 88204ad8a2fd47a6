"""The deterministic chaincode API: what native chaincode may see and do.

A chaincode is a subclass of `Chaincode` bound to a Solidity artifact (`artifact =
"PrescriptionRegistry"`): its dispatch table is built from the artifact's ABI
(`rxledger.core.artifacts.load_artifact(name)["abi"]`), so the native chaincode and the Solidity
contract answer the same selectors with the same encodings. Each ABI function is
implemented by a method marked `@abi("name")`; a function of the ABI without a method (or
a method the ABI does not know) fails at import.

A method receives a `Context` and the decoded arguments and returns the function's
outputs (a value for one output, a tuple for several; `None` for none). Everything the
method may know or change goes through the context:

- `ctx.sender`, `ctx.origin`, `ctx.value`, `ctx.block_number`, `ctx.timestamp`,
  `ctx.chain_id`: the message and the block (no wall clock);
- typed storage under the chaincode's own key namespace, read through the block's
  journaled session (`get_bytes32`/`put_bytes32`, `get_uint`/`put_uint`,
  `get_address`/`put_address`, `get_bool`/`put_bool`, `get_bytes`/`put_bytes`, and
  fixed-layout records with `Layout` and `get_record`/`put_record`); a zero value deletes;
- `ctx.emit(event, *args)`: an Ethereum log with the Solidity event's topics;
- `ctx.revert(reason)` / `ctx.require(cond, reason)`: Solidity's `Error(string)`;
  `ctx.revert_error(signature, *args)`: a custom error;
- `ctx.keccak(data)`, `ctx.abi_encode(types, values)`: hashing and ABI encoding;
- `ctx.view_of(address)`: a read-only context over another chaincode's namespace (how
  the registries read Governance, as their Solidity versions `STATICCALL member()`).

Malformed calls fail as Solidity 0.8's dispatcher and ABI decoder do, with EMPTY revert
data: calldata shorter than a selector, an unknown selector (there is no fallback), value
sent to a non-payable function, calldata shorter than the arguments, an argument word that
does not fit its type (checked by eth_abi's strict decoder). Bytes beyond the arguments are
ignored.

Determinism: chaincode modules import nothing that reads clocks, draws randomness, does
I/O or iterates sets (`tests/unit/chaincode/test_chaincode_purity.py` walks their imports
and scans their syntax); integers only. The ABI is read from the artifacts once, at import.

Gas (`Gas`) is charged per operation, deterministically, roughly at EVM prices so that
`eth_estimateGas` gives sane figures; running out of gas, or writing in a static call,
fails the call as the EVM does (all gas used, empty output, no state change).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, NoReturn, Protocol

from eth_abi.abi import encode as abi_encode
from eth_abi.decoding import ContextFramesBytesIO
from eth_abi.exceptions import DecodingError
from eth_abi.registry import registry as abi_registry

from rxledger.core.artifacts import load_artifact
from rxledger.core.crypto import keccak256
from rxledger.core.types.receipts import Log

__all__ = [
    "ERROR_SELECTOR",
    "AbiFunction",
    "Chaincode",
    "Context",
    "EventDef",
    "Gas",
    "Layout",
    "Meter",
    "OutOfGas",
    "Revert",
    "StateAccess",
    "WriteProtection",
    "abi",
    "abi_type",
    "error_data",
]

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = b"\x00" * 20


class Gas:
    """The gas schedule of native chaincode (documented in docs/ARCHITECTURE.md).

    Roughly the EVM's prices for the same work, so that a native call and its Solidity
    twin cost the same order of gas; a 'word' is 32 bytes of a value (at least one).
    """

    CALL = 2_600  # a call into a chaincode (the EVM's cold account access)
    VIEW_CALL = 100  # a chaincode reading another's state (a warm STATICCALL)
    ACCESS = 2_100  # each storage read or write (the EVM's cold SLOAD)
    ACCESS_WORD = 100  # each word of a value read, beyond the first
    SET_WORD = 20_000  # each word of a value stored under a key that was empty
    RESET_WORD = 2_900  # each word of a value that replaces (or deletes) another
    LOG = 375  # per log
    LOG_TOPIC = 375  # per topic
    LOG_BYTE = 8  # per byte of log data
    KECCAK = 30  # per hash
    KECCAK_WORD = 6  # per word hashed


def words(length: int) -> int:
    """32-byte words of a value of `length` bytes (at least one)."""
    return max(1, (length + 31) // 32)


class Revert(Exception):
    """A revert with data (`Error(string)` for refusals; empty for malformed calls)."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.data = data


class Abort(Exception):
    """A failure that consumes all the call's gas and returns nothing (EVM exceptional halt)."""


class OutOfGas(Abort):
    pass


class WriteProtection(Abort):
    """A state change (storage write or log) in a static call."""


_error_cache: dict[str, bytes] = {}


def error_data(reason: str) -> bytes:
    """Solidity's revert data for `revert(reason)`: 0x08c379a0 ‖ abi.encode(string)."""
    data = _error_cache.get(reason)
    if data is None:
        data = _error_cache[reason] = ERROR_SELECTOR + abi_encode(["string"], [reason])
    return data


class Meter:
    """Gas of one call, shared by the contexts it opens (view_of)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, gas: int) -> None:
        self.used += gas
        if self.used > self.limit:
            raise OutOfGas(f"out of gas: {self.used} > {self.limit}")


class StateAccess(Protocol):
    """What a context needs of the block's session: journaled reads and writes (full keys)."""

    def read(self, key: bytes) -> bytes: ...

    def write(self, key: bytes, value: bytes) -> bytes:
        """Store `value` (b"" deletes); returns the value it replaces."""
        ...


# ------------------------------------------------------------------------------- ABI tables
def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter (tuples spelled out)."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def _is_dynamic(type_str: str) -> bool:
    if type_str in ("bytes", "string") or type_str.endswith("[]"):
        return True
    if type_str.startswith("("):
        return any(_is_dynamic(t) for t in _split_tuple(type_str))
    return False


def _split_tuple(type_str: str) -> list[str]:
    """The component types of a tuple type string '(a,b,(c,d))'."""
    inner = type_str[1:type_str.rindex(")")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    if inner:
        parts.append(inner[start:])
    return parts


def _head_words(type_str: str) -> int:
    if _is_dynamic(type_str):
        return 1
    if type_str.startswith("("):
        return sum(_head_words(t) for t in _split_tuple(type_str))
    if type_str.endswith("]"):
        base, size = type_str[:type_str.rindex("[")], type_str[type_str.rindex("[") + 1:-1]
        return int(size) * _head_words(base)
    return 1


def _to_python(type_str: str, value: Any) -> Any:
    """eth_abi decodes addresses to hex strings; chaincode works with 20-byte values."""
    if type_str == "address":
        return bytes.fromhex(value[2:])
    if type_str.startswith("address["):
        return tuple(bytes.fromhex(v[2:]) for v in value)
    return value


# -- static words without eth_abi's object layer -------------------------------------------
# The lifecycle's arguments and events are all one-word static types (bytes32, uintN,
# address, bool). eth_abi encodes and decodes them through several layers of encoder
# objects (a third of a native transaction's time); these do the same word by word. A
# value they do not expect (another Python type, out of range) goes to eth_abi, which
# encodes it or raises exactly as before. tests/unit/chaincode/test_chaincode_api.py
# compares them with eth_abi.
_ONE32 = b"\x00" * 31 + b"\x01"
_ZERO12 = b"\x00" * 12


def _word_encoder(type_str: str) -> Callable[[Any], bytes] | None:
    """Encoder of one static one-word type (None for other types)."""
    slow = _encoder(type_str)
    if type_str == "bytes32":
        def encode_bytes32(value: Any) -> bytes:
            if type(value) is bytes and len(value) == 32:
                return value
            return bytes(slow(value))
        return encode_bytes32
    if type_str.startswith("uint") and type_str[4:].isdigit():
        limit = 1 << int(type_str[4:])

        def encode_uint(value: Any) -> bytes:
            if type(value) is int and 0 <= value < limit:
                return value.to_bytes(32, "big")
            return bytes(slow(value))
        return encode_uint
    if type_str == "address":
        def encode_address(value: Any) -> bytes:
            if type(value) is bytes and len(value) == 20:
                return _ZERO12 + value
            return bytes(slow(value))
        return encode_address
    if type_str == "bool":
        def encode_bool(value: Any) -> bytes:
            if value is True:
                return _ONE32
            if value is False:
                return ZERO32
            return bytes(slow(value))
        return encode_bool
    return None


def _word_decoder(type_str: str) -> Callable[[bytes], Any] | None:
    """Strict decoder of one 32-byte word of a static one-word type, as eth_abi's strict
    decoder (a word that does not fit the type: `Revert(b"")`); None for other types."""
    if type_str == "bytes32":
        return bytes
    if type_str.startswith("uint") and type_str[4:].isdigit():
        pad = 32 - int(type_str[4:]) // 8
        zeros = b"\x00" * pad

        def decode_uint(word: bytes) -> int:
            if word[:pad] != zeros:
                raise Revert(b"")
            return int.from_bytes(word, "big")
        return decode_uint
    if type_str == "address":
        def decode_address(word: bytes) -> bytes:
            if word[:12] != _ZERO12:
                raise Revert(b"")
            return word[12:]
        return decode_address
    if type_str == "bool":
        def decode_bool(word: bytes) -> bool:
            if word == _ONE32:
                return True
            if word == ZERO32:
                return False
            raise Revert(b"")
        return decode_bool
    return None


def _word_codecs(types: Sequence[str], make: Callable[[str], Any]) -> tuple[Any, ...] | None:
    """Per-type word codecs, or None unless every type has one."""
    codecs = tuple(make(t) for t in types)
    return None if any(c is None for c in codecs) else codecs


@dataclass(frozen=True)
class AbiFunction:
    """One function of a chaincode's ABI, with its decoder and the method implementing it."""

    name: str
    signature: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    mutability: str
    method: str
    head_size: int
    decoder: Any
    encoder: Any
    word_decoders: tuple[Callable[[bytes], Any], ...] | None = None  # all inputs one-word static
    word_encoders: tuple[Callable[[Any], bytes], ...] | None = None  # all outputs one-word static

    @property
    def static(self) -> bool:
        return self.mutability in ("view", "pure")

    def decode(self, data: bytes) -> list[Any]:
        """The arguments of calldata `data` (selector stripped); raises `Revert(b"")` as
        Solidity's decoder does for short or ill-fitting data."""
        if len(data) < self.head_size:
            raise Revert(b"")
        if self.word_decoders is not None:
            return [decode(data[32 * i:32 * i + 32]) for i, decode in enumerate(self.word_decoders)]
        try:
            values = self.decoder(ContextFramesBytesIO(data))  # type: ignore[no-untyped-call]
        except DecodingError:
            raise Revert(b"") from None
        return [_to_python(t, v) for t, v in zip(self.inputs, values, strict=True)]

    def encode_output(self, result: Any) -> bytes:
        if not self.outputs:
            return b""
        values = (result,) if len(self.outputs) == 1 else tuple(result)
        if self.word_encoders is not None and len(values) == len(self.word_encoders):
            return b"".join(encode(v) for encode, v in zip(self.word_encoders, values, strict=True))
        return bytes(self.encoder(values))


TopicEncoder = Callable[[Any], bytes]


@dataclass(frozen=True)
class EventDef:
    """A Solidity event: topic0 and which arguments are indexed."""

    name: str
    signature: str
    topic0: bytes
    types: tuple[str, ...]
    indexed: tuple[bool, ...]
    data_types: tuple[str, ...]

    @classmethod
    def from_abi(cls, entry: Mapping[str, Any]) -> EventDef:
        types = tuple(abi_type(i) for i in entry["inputs"])
        indexed = tuple(bool(i.get("indexed")) for i in entry["inputs"])
        signature = f"{entry['name']}({','.join(types)})"
        data_types = tuple(t for t, ix in zip(types, indexed, strict=True) if not ix)
        return cls(entry["name"], signature, keccak256(signature.encode()), types, indexed, data_types)

    @classmethod
    def from_signature(cls, signature: str, indexed: Sequence[bool] | None = None) -> EventDef:
        """An event from 'Name(type,type,...)' (`indexed` flags; none indexed by default)."""
        name = signature[:signature.index("(")]
        types = tuple(_split_tuple(signature[len(name):]))
        flags = tuple(indexed) if indexed is not None else (False,) * len(types)
        data_types = tuple(t for t, ix in zip(types, flags, strict=True) if not ix)
        return cls(name, signature, keccak256(signature.encode()), types, flags, data_types)

    @cached_property
    def _plan(self) -> tuple[TopicEncoder | None, ...]:
        """Per argument: its topic encoder if indexed, None for data (made once)."""
        return tuple(_topic_encoder(t) if ix else None for t, ix in zip(self.types, self.indexed, strict=True))

    def log(self, address: bytes, args: Sequence[Any]) -> Log:
        if len(args) != len(self.types):
            raise TypeError(f"{self.name} takes {len(self.types)} arguments, got {len(args)}")
        topics = [self.topic0]
        data_values = []
        for topic, value in zip(self._plan, args, strict=True):
            if topic is None:
                data_values.append(value)
            else:
                topics.append(topic(value))
        data = _encode_data(self.data_types, data_values) if self.data_types else b""
        return Log(address, tuple(topics), data)


def _topic_encoder(type_str: str) -> TopicEncoder:
    """How an indexed argument of `type_str` becomes a topic."""
    if not _is_dynamic(type_str):
        return _topic_word_encoder(type_str)
    if type_str in ("bytes", "string"):  # Solidity indexes dynamic values by their hash
        return lambda value: keccak256(value.encode() if isinstance(value, str) else bytes(value))
    return lambda value: keccak256(abi_encode([type_str], [value]))


_encoders: dict[str, Any] = {}
_tuple_encoders: dict[tuple[str, ...], Any] = {}


def _encoder(type_str: str) -> Any:
    """eth_abi's encoder of one type (built once)."""
    enc = _encoders.get(type_str)
    if enc is None:
        enc = _encoders[type_str] = abi_registry.get_encoder(type_str)
    return enc


_topic_encoders: dict[str, Callable[[Any], bytes]] = {}


def _topic_word_encoder(type_str: str) -> Callable[[Any], bytes]:
    """The topic of an indexed static value: its ABI word."""
    encode = _topic_encoders.get(type_str)
    if encode is None:
        slow = _encoder(type_str)
        encode = _topic_encoders[type_str] = _word_encoder(type_str) or (lambda v: bytes(slow(v)))
    return encode


_data_word_encoders: dict[tuple[str, ...], tuple[Callable[[Any], bytes], ...] | None] = {}


def _encode_data(types: tuple[str, ...], values: list[Any]) -> bytes:
    """abi.encode(values) of an event's data: word by word when every type is a one-word
    static type (the encoding is then the words in order), else eth_abi's."""
    if types not in _data_word_encoders:
        _data_word_encoders[types] = _word_codecs(types, _word_encoder)
    encoders = _data_word_encoders[types]
    if encoders is None or len(values) != len(encoders):
        return bytes(_tuple_encoder(types)(tuple(values)))
    return b"".join(encode(v) for encode, v in zip(encoders, values, strict=True))


def _tuple_encoder(types: tuple[str, ...]) -> Any:
    enc = _tuple_encoders.get(types)
    if enc is None:
        enc = _tuple_encoders[types] = abi_registry.get_tuple_encoder(*types)
    return enc


def abi(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a `Chaincode` method as the implementation of ABI function `name` (a name, or a
    full signature 'name(type,...)' for overloaded functions)."""
    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__chaincode_abi__ = name  # type: ignore[attr-defined]
        return method
    return mark


def _functions_of(cls: type, entries: Sequence[Mapping[str, Any]]) -> dict[bytes, AbiFunction]:
    marked: dict[str, str] = {}
    for attr in dir(cls):
        target = getattr(getattr(cls, attr), "__chaincode_abi__", None)
        if target is not None:
            marked[target] = attr
    table: dict[bytes, AbiFunction] = {}
    used: list[str] = []
    for entry in entries:
        if entry.get("type") != "function":
            continue
        inputs = tuple(abi_type(i) for i in entry["inputs"])
        signature = f"{entry['name']}({','.join(inputs)})"
        method = marked.get(signature) or marked.get(entry["name"])
        if method is None:
            raise TypeError(f"{cls.__name__} does not implement {signature} of its ABI")
        used.append(signature if signature in marked else entry["name"])
        selector = keccak256(signature.encode())[:4]
        table[selector] = AbiFunction(
            name=entry["name"], signature=signature, selector=selector, inputs=inputs,
            outputs=tuple(abi_type(o) for o in entry["outputs"]),
            mutability=entry.get("stateMutability", "nonpayable"), method=method,
            head_size=32 * sum(_head_words(t) for t in inputs),
            decoder=abi_registry.get_tuple_decoder(*inputs, strict=True),
            encoder=abi_registry.get_tuple_encoder(*(abi_type(o) for o in entry["outputs"])),
            word_decoders=_word_codecs(inputs, _word_decoder),
            word_encoders=_word_codecs(tuple(abi_type(o) for o in entry["outputs"]), _word_encoder),
        )
    extra = [m for m in marked if m not in used]
    if extra:
        raise TypeError(f"{cls.__name__} implements {extra}, which its ABI does not have")
    return table


# -------------------------------------------------------------------------------- storage
class Layout:
    """A fixed-width record stored under one key (big-endian, like a packed struct).

    Field types: bytes32, address, bool, uint8/16/32/64. `decode` of an absent
    key (b"") gives all zeros, as Solidity reads an unset struct.
    """

    _FORMATS: ClassVar[dict[str, str]] = {
        "bytes32": "32s", "address": "20s", "bool": "?", "uint8": "B", "uint16": "H",
        "uint32": "I", "uint64": "Q",
    }

    def __init__(self, *fields: tuple[str, str]) -> None:
        self.names = tuple(n for n, _ in fields)
        self.types = tuple(t for _, t in fields)
        for t in self.types:
            if t not in self._FORMATS:
                raise TypeError(f"unsupported record field type {t}")
        self._struct = struct.Struct(">" + "".join(self._FORMATS[t] for t in self.types))
        self.size = self._struct.size
        self.zero = tuple(self._zero(t) for t in self.types)

    @staticmethod
    def _zero(type_str: str) -> Any:
        return {"bytes32": ZERO32, "address": ZERO_ADDRESS, "bool": False}.get(type_str, 0)

    def decode(self, data: bytes) -> tuple[Any, ...]:
        if not data:
            return self.zero
        return tuple(self._struct.unpack(data))

    def encode(self, values: Sequence[Any]) -> bytes:
        data = self._struct.pack(*values)
        return b"" if data == bytes(self.size) else data


class Context:
    """One call's view of the chain: message, block, storage namespace, logs, gas."""

    __slots__ = ("address", "sender", "origin", "value", "block_number", "timestamp",
                 "chain_id", "static", "logs", "_state", "_meter", "_prefix")

    def __init__(self, state: StateAccess, meter: Meter, *, address: bytes, sender: bytes,
                 origin: bytes, value: int, block_number: int, timestamp: int, chain_id: int,
                 static: bool, prefix: bytes, logs: list[Log] | None = None) -> None:
        self.address = address
        self.sender = sender
        self.origin = origin
        self.value = value
        self.block_number = block_number
        self.timestamp = timestamp
        self.chain_id = chain_id
        self.static = static
        self.logs: list[Log] = [] if logs is None else logs
        self._state = state
        self._meter = meter
        self._prefix = prefix

    # -- gas, hashing, reverts ----------------------------------------------------------------
    def charge(self, gas: int) -> None:
        self._meter.charge(gas)

    @property
    def gas_used(self) -> int:
        return self._meter.used

    def keccak(self, data: bytes) -> bytes:
        self._meter.charge(Gas.KECCAK + Gas.KECCAK_WORD * words(len(data)))
        return keccak256(data)

    @staticmethod
    def abi_encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
        return abi_encode(list(types), list(values))

    @staticmethod
    def revert(reason: str) -> NoReturn:
        raise Revert(error_data(reason))

    @staticmethod
    def require(condition: bool, reason: str) -> None:
        if not condition:
            raise Revert(error_data(reason))

    @staticmethod
    def revert_error(signature: str, *args: Any) -> NoReturn:
        """Revert with a Solidity custom error, e.g. `revert_error("NotOwner(address)", a)`."""
        types = _split_tuple(signature[signature.index("("):])
        raise Revert(keccak256(signature.encode())[:4] + abi_encode(types, list(args)))

    # -- raw storage --------------------------------------------------------------------------
    def get_bytes(self, key: bytes) -> bytes:
        """The value under `key` (b"" when there is none)."""
        value = self._state.read(self._prefix + key)
        self._meter.charge(Gas.ACCESS + Gas.ACCESS_WORD * (words(len(value)) - 1))
        return value

    def put_bytes(self, key: bytes, value: bytes) -> None:
        """Store `value` under `key`; b"" deletes it."""
        if self.static:
            raise WriteProtection("storage write in a static call")
        self._meter.charge(Gas.ACCESS)
        previous = self._state.write(self._prefix + key, value)
        if previous != value:
            per_word = Gas.RESET_WORD if previous else Gas.SET_WORD
            self._meter.charge(per_word * words(max(len(value), len(previous))))

    # -- typed storage (zero values delete) ------------------------------------------------
    def get_uint(self, key: bytes) -> int:
        return int.from_bytes(self.get_bytes(key), "big")

    def put_uint(self, key: bytes, value: int) -> None:
        if value < 0 or value >= 1 << 256:
            raise ValueError(f"uint out of range: {value}")
        self.put_bytes(key, value.to_bytes((value.bit_length() + 7) // 8, "big"))

    def get_bytes32(self, key: bytes) -> bytes:
        return self.get_bytes(key) or ZERO32

    def put_bytes32(self, key: bytes, value: bytes) -> None:
        if len(value) != 32:
            raise ValueError("bytes32 value must be 32 bytes")
        self.put_bytes(key, b"" if value == ZERO32 else value)

    def get_address(self, key: bytes) -> bytes:
        return self.get_bytes(key) or ZERO_ADDRESS

    def put_address(self, key: bytes, value: bytes) -> None:
        if len(value) != 20:
            raise ValueError("address value must be 20 bytes")
        self.put_bytes(key, b"" if value == ZERO_ADDRESS else value)

    def get_bool(self, key: bytes) -> bool:
        return self.get_bytes(key) == b"\x01"

    def put_bool(self, key: bytes, value: bool) -> None:
        self.put_bytes(key, b"\x01" if value else b"")

    def get_record(self, key: bytes, layout: Layout) -> tuple[Any, ...]:
        return layout.decode(self.get_bytes(key))

    def put_record(self, key: bytes, layout: Layout, values: Sequence[Any]) -> None:
        self.put_bytes(key, layout.encode(values))

    # -- events -------------------------------------------------------------------------------
    def emit(self, event: EventDef | str | Mapping[str, Any], *args: Any) -> None:
        """Append a log of `event` with `args` (in the event's parameter order).

        `event`: an `EventDef`; an ABI event entry (a dict as in an artifact); or a string,
        the name or signature ('Issued(bytes32,...)') of an event of this chaincode's ABI.
        """
        if self.static:
            raise WriteProtection("log in a static call")
        log = _event_def(self.address, event).log(self.address, args)
        self._meter.charge(Gas.LOG + Gas.LOG_TOPIC * len(log.topics) + Gas.LOG_BYTE * len(log.data))
        self.logs.append(log)

    # -- other chaincodes ---------------------------------------------------------------------
    def view_of(self, address: bytes) -> Context:
        """A read-only context over chaincode `address`'s storage, as a STATICCALL from this
        chaincode sees it (sender = this chaincode), sharing this call's gas."""
        self._meter.charge(Gas.VIEW_CALL)
        return Context(self._state, self._meter, address=address, sender=self.address,
                       origin=self.origin, value=0, block_number=self.block_number,
                       timestamp=self.timestamp, chain_id=self.chain_id, static=True,
                       prefix=namespace(address))


_chaincode_events: dict[bytes, dict[str, EventDef]] = {}  # address -> name and signature -> event


def _event_def(address: bytes, event: EventDef | str | Mapping[str, Any]) -> EventDef:
    if isinstance(event, EventDef):
        return event
    if isinstance(event, str):
        found = _chaincode_events.get(address, {}).get(event)
        if found is None:
            raise KeyError(f"no event {event!r} in the ABI of the chaincode at 0x{address.hex()}")
        return found
    return EventDef.from_abi(event)


def namespace(address: bytes) -> bytes:
    """The storage key prefix of the chaincode at `address` (within the `c` keyspace)."""
    return b"c" + address


class Chaincode:
    """A native chaincode: ABI functions dispatched by selector, state through a `Context`.

    Subclasses set `artifact` (the Solidity contract whose ABI they implement) and
    `address` (their reserved address), and mark methods with `@abi(name)`.
    """

    artifact: ClassVar[str]
    address: ClassVar[bytes]
    functions: ClassVar[dict[bytes, AbiFunction]]
    events: ClassVar[dict[str, EventDef]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        entries = load_artifact(cls.artifact)["abi"]
        cls.functions = _functions_of(cls, entries)
        cls.events = {e["name"]: EventDef.from_abi(e) for e in entries if e.get("type") == "event"}
        names = _chaincode_events.setdefault(cls.address, {})
        for event in cls.events.values():
            names[event.name] = names[event.signature] = event

    def dispatch(self, ctx: Context, data: bytes) -> bytes:
        """Run the function `data` selects; returns its ABI-encoded outputs.

        Raises `Revert` (empty data for malformed calls, as Solidity) or `Abort`.
        """
        if len(data) < 4:
            raise Revert(b"")
        fn = self.functions.get(data[:4])
        if fn is None:
            raise Revert(b"")
        if ctx.value and fn.mutability != "payable":
            raise Revert(b"")
        args = fn.decode(data[4:])
        if fn.static:
            ctx.static = True
        result = getattr(self, fn.method)(ctx, *args)
        return fn.encode_output(result)
