"""Run `rxledger node start --config …` with a skewed clock and Byzantine behaviour.

    python tests/integration/network/nodewrap.py --control CONTROL.json -- node start --config node.toml

The wrapper is test code: production code has no flag for any of this. Before the node's
modules are imported it replaces `time.time` (so every clock the node reads, including
`ConsensusRuntime`'s default `clock=time.time` bound at import, is the patched one) and
wraps the outbound side of `node.p2p.transport.P2PTransport` (the runtime's transport):
what the node's own honest state machine sends is rewritten here, re-signed with the
node's own validator key, and goes out over the node's real TLS connections with its
own certificate. The node is thus a real member of the network (f = 1 of 4) whose
behaviour the test switches at run time.

The test steers it through CONTROL.json (re-read when it changes, every 0.2 s):

    {"skew": 8.0,                 # seconds added to time.time (negative: behind)
     "modes": ["equivocate", …],  # active Byzantine modes (empty: honest)
     "flood_rate": 300,           # frames per second in "flood" mode
     "seed": 0}                   # where the invalid-block mode starts in its list of fields

Modes:
- `equivocate`: as proposer, a different valid block to each half of the peers (the
  honest block to one half, an empty block, or the same one a second later, to the other),
  both proposals properly signed.
- `invalid-block`: as proposer, a block with one wrong header field, properly signed for
  its digest, the same to every peer; each proposal changes the next field of: difficulty,
  mix hash, nonce, base fee, ommers hash, state root, gas limit, receipts root (starting
  at `seed`).
- `bad-seals`: our COMMITs carry a commit seal made by another key, over another digest,
  or 65 garbage bytes (in turn); the COMMIT itself is signed by us.
- `replay`: every 0.1 s, up to 10 consensus messages seen earlier (ours and the others',
  of earlier heights and rounds) are sent again to every peer.
- `flood`: `flood_rate` CONSENSUS frames per second to every peer: duplicates of recent
  messages, PREPAREs/COMMITs/ROUND-CHANGEs signed by us for random digests and rounds of
  this and future heights, random bytes, RLP lists of random items, and lists shaped
  like a PROPOSAL whose block has a byte string for its transaction list; every 2 s one
  frame of ~150,000 nested RLP lists; plus TX frames of random bytes.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

_real_time = time.time


class Control:
    """The test's instructions, re-read from the control file when it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.skew = 0.0
        self.modes: frozenset[str] = frozenset()
        self.flood_rate = 300
        self.seed = 0
        self._mtime = -1.0
        self.reload()

    def reload(self) -> None:
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return  # absent or half-written: keep the last instructions
        self._mtime = mtime
        self.skew = float(data.get("skew", 0.0))
        self.modes = frozenset(data.get("modes", ()))
        self.flood_rate = int(data.get("flood_rate", 300))
        self.seed = int(data.get("seed", 0))

    def watch(self) -> None:
        while True:
            time.sleep(0.2)
            self.reload()


CONTROL = Control(None)


def _skewed_time() -> float:
    return _real_time() + CONTROL.skew


class Byzantine:
    """The outbound hooks, bound to the node's chain, key and p2p network."""

    def __init__(self, key: bytes) -> None:
        from rxledger.core.crypto import private_key_to_address

        self.key = key
        self.address = private_key_to_address(key)
        self.other_key = bytes(random.Random(7).randbytes(32))  # a key of nobody in the network
        self.chain: Any = None
        self.network: Any = None
        self.seen: deque[bytes] = deque(maxlen=2000)
        self.rng = random.Random()
        self.counts: dict[str, int] = {}
        self.invalid_sent = 0
        self._lock = threading.Lock()

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + n

    # -- rewriting our own messages --------------------------------------------------------
    def rewrite(self, data: bytes) -> list[tuple[int, bytes]] | None:
        """None: send `data` unchanged. Else [(peer selector, data)]: selector 0 for one
        half of the peers, 1 for the other, -1 for all."""
        modes = CONTROL.modes
        if not modes or not ({"equivocate", "invalid-block", "bad-seals"} & modes):
            return None
        from node.consensus.messages import CommitMsg, ProposalMsg, decode_message

        msg = decode_message(data)  # our own message
        if isinstance(msg, ProposalMsg):
            height = msg.signed.height
            choices = [m for m in ("equivocate", "invalid-block") if m in modes]
            if not choices:
                return None
            mode = choices[height % len(choices)]
            if mode == "equivocate":
                other = self._equivocal_block(msg.block)
                self.count("equivocating proposals")
                return [(0, data), (1, self._proposal(msg, other))]
            self.count("invalid proposals")
            return [(-1, self._proposal(msg, self._invalid_block(msg.block)))]
        if isinstance(msg, CommitMsg) and "bad-seals" in modes:
            self.count("bad seals")
            return [(-1, self._bad_commit(msg))]
        return None

    def _proposal(self, msg: Any, block: Any) -> bytes:
        from node.consensus.messages import PROPOSAL, ProposalMsg, encode_message, sign_payload
        from rxledger.core.types.headers import seal_hash

        signed = sign_payload(PROPOSAL, msg.signed.height, msg.signed.round, (seal_hash(block.header),),
                              self.key, self.address)
        return encode_message(ProposalMsg(signed, block, msg.round_changes, msg.prepares))

    def _equivocal_block(self, block: Any) -> Any:
        header = block.header
        extra = header.extra
        if block.transactions:
            txs: tuple[Any, ...] = ()
            timestamp = header.timestamp
        else:
            txs, timestamp = (), header.timestamp + 1
        other, _ = self.chain.build_block(list(txs), timestamp=timestamp, proposer=self.address,
                                          round=extra.round, vote=extra.vote)
        return other

    def _invalid_block(self, block: Any) -> Any:
        from rxledger.core.types.blocks import Block

        header = block.header
        junk = self.rng.randbytes(32)
        changes: list[dict[str, Any]] = [
            {"difficulty": 2}, {"mix_hash": junk}, {"nonce": b"\x01" * 8}, {"base_fee_per_gas": 7},
            {"ommers_hash": junk}, {"state_root": junk}, {"gas_limit": header.gas_limit + 1},
            {"receipts_root": junk},
        ]
        change = changes[(CONTROL.seed + self.invalid_sent) % len(changes)]
        self.invalid_sent += 1
        return Block(replace(header, **change), block.transactions)

    def _bad_commit(self, msg: Any) -> bytes:
        from node.consensus.messages import COMMIT, CommitMsg, encode_message, sign_payload
        from rxledger.core.crypto import encode_signature, sign_hash

        s = msg.signed
        variant = self.rng.randrange(3)
        if variant == 0:
            seal = encode_signature(*sign_hash(s.digest, self.other_key))  # another key's seal
        elif variant == 1:
            seal = encode_signature(*sign_hash(self.rng.randbytes(32), self.key))  # another digest
        else:
            seal = self.rng.randbytes(64) + bytes([self.rng.randrange(2)])
        signed = sign_payload(COMMIT, s.height, s.round, (s.digest, seal), self.key, self.address)
        return encode_message(CommitMsg(signed))

    # -- replay and flood ------------------------------------------------------------------
    def background(self) -> None:
        from node.p2p.frames import Kind

        ticks = 0
        while True:
            time.sleep(0.05)
            modes, network = CONTROL.modes, self.network
            if network is None or self.chain is None:
                continue
            try:
                if "replay" in modes and self.seen and self.rng.random() < 0.5:
                    old = self.rng.sample(list(self.seen), min(10, len(self.seen)))
                    for data in old:
                        network.broadcast(Kind.CONSENSUS, data)
                    self.count("replayed", len(old))
                if "flood" in modes:
                    for kind, data in self._flood_frames(max(1, CONTROL.flood_rate // 20)):
                        network.broadcast(kind, data)
                    ticks += 1
                    if ticks % 40 == 1:  # every 2 s: ~150,000 nested lists (578 KB, unsigned)
                        network.broadcast(Kind.CONSENSUS, nested_lists(150_000))
                        self.count("deeply nested frames")
            except Exception as exc:  # keep the Byzantine thread going, say what failed
                print(f"nodewrap: background send failed: {exc!r}", file=sys.stderr, flush=True)

    def _head_items(self) -> Any:
        import rlp

        from rxledger.core.types import encode_header

        return rlp.decode(encode_header(self.chain.head))

    def _flood_frames(self, n: int) -> list[tuple[Any, bytes]]:
        import rlp

        from node.consensus.messages import (
            COMMIT,
            PREPARE,
            ROUND_CHANGE,
            CommitMsg,
            PrepareMsg,
            RoundChangeMsg,
            encode_message,
            sign_payload,
        )
        from node.p2p.frames import Kind
        from rxledger.core.crypto import encode_signature, sign_hash

        rng, out = self.rng, []
        height = self.chain.head.number + 1
        for _ in range(n):
            pick = rng.randrange(8)
            h = height + (rng.choice((0, 0, 1, 2, 50, 10_000)) if pick < 4 else 0)
            r = rng.choice((0, 1, 2, 7, 1000))
            if pick == 0 and self.seen:
                data = rng.choice(list(self.seen))
            elif pick == 1:
                digest = rng.randbytes(32)
                data = encode_message(PrepareMsg(sign_payload(PREPARE, h, r, (digest,), self.key, self.address)))
            elif pick == 2:
                digest = rng.randbytes(32)
                seal = encode_signature(*sign_hash(digest, self.key))
                data = encode_message(CommitMsg(sign_payload(COMMIT, h, r, (digest, seal), self.key, self.address)))
            elif pick == 3:
                data = encode_message(RoundChangeMsg(
                    sign_payload(ROUND_CHANGE, h, r, (None,), self.key, self.address), None, ()))
            elif pick == 4:
                data = rng.randbytes(rng.randrange(1, 600))
            elif pick == 5:
                data = rlp.encode([rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 8))])
            elif pick == 6:  # a PROPOSAL whose block has a byte string for its transaction list
                data = rlp.encode([0x12, [[h, r, rng.randbytes(32)], rng.randbytes(65)],
                                   [self._head_items(), rng.randbytes(100), [], []], [], []])
            else:
                out.append((Kind.TX, rng.randbytes(rng.randrange(1, 300))))
                continue
            out.append((Kind.CONSENSUS, data))
        self.count("flood frames", n)
        return out


def nested_lists(depth: int) -> bytes:
    """RLP of `depth` lists each holding the next ([[[…[]…]]]), built without recursion."""
    lengths = [0]  # payload length of each list, innermost first
    for _ in range(depth - 1):
        inner = lengths[-1]
        lengths.append(inner + len(_list_prefix(inner)))
    return b"".join(_list_prefix(length) for length in reversed(lengths))


def _list_prefix(length: int) -> bytes:
    if length < 56:
        return bytes([0xC0 + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0xF7 + len(size)]) + size


def install(config_path: str) -> None:
    """Patch P2PTransport so the node's outbound consensus traffic goes through Byzantine."""
    from network.config import load_node_config
    from node.p2p.frames import Kind
    from node.p2p.transport import P2PTransport

    byz = Byzantine(load_node_config(config_path).load_validator_key())
    init, attach, on_consensus = P2PTransport.__init__, P2PTransport.attach, P2PTransport.on_consensus

    def patched_init(self: Any, chain: Any, **kwargs: Any) -> None:
        init(self, chain, **kwargs)
        byz.chain = chain

    def patched_attach(self: Any, network: Any) -> None:
        attach(self, network)
        byz.network = network

    def patched_on_consensus(self: Any, peer: bytes, data: bytes) -> None:
        byz.seen.append(data)
        on_consensus(self, peer, data)

    def out(self: Any, data: bytes, only: bytes | None) -> None:
        network = self.network
        if network is None:
            return
        byz.seen.append(data)
        try:
            plan = byz.rewrite(data)
        except Exception as exc:
            print(f"nodewrap: cannot rewrite a message: {exc!r}", file=sys.stderr, flush=True)
            plan = None
        if plan is None:
            plan = [(-1, data)]
        peers = sorted(p.address for p in network.connected_peers())
        if only is not None:
            peers = [only]
        for selector, payload in plan:
            for i, peer in enumerate(peers):
                if selector == -1 or i % 2 == selector:
                    network.send(peer, Kind.CONSENSUS, payload)

    P2PTransport.__init__ = patched_init  # type: ignore[method-assign]
    P2PTransport.attach = patched_attach  # type: ignore[method-assign]
    P2PTransport.on_consensus = patched_on_consensus  # type: ignore[method-assign]
    P2PTransport.broadcast = lambda self, data: out(self, data, None)  # type: ignore[method-assign]
    P2PTransport.send = lambda self, peer, data: out(self, data, peer)  # type: ignore[method-assign]
    threading.Thread(target=byz.background, name="byzantine", daemon=True).start()

    def report() -> None:
        while True:
            time.sleep(5)
            if byz.counts:
                print(f"nodewrap: {json.dumps(byz.counts, sort_keys=True)} (modes {sorted(CONTROL.modes)}, "
                      f"skew {CONTROL.skew:+g} s)", flush=True)

    threading.Thread(target=report, name="byzantine-report", daemon=True).start()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: nodewrap.py [--control FILE] -- node start --config node.toml", file=sys.stderr)
        return 2
    ours, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    control = None
    if ours[:1] == ["--control"] and len(ours) == 2:
        control = Path(ours[1])
    elif ours:
        print(f"nodewrap.py: unknown arguments {ours}", file=sys.stderr)
        return 2
    CONTROL.path = control
    CONTROL.reload()
    time.time = _skewed_time  # before node.* is imported: default arguments bind it
    threading.Thread(target=CONTROL.watch, name="control", daemon=True).start()
    if "--config" in rest:
        install(rest[rest.index("--config") + 1])
    from rxledger.cli import main as node_main

    print(f"nodewrap: starting the node (skew {CONTROL.skew:+g} s, modes {sorted(CONTROL.modes)})", flush=True)
    return node_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
