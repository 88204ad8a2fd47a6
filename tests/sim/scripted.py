"""Scripted QBFT scenarios in the datadriven style of etcd-io/raft's interaction tests.

A scenario file is a list of blocks. Each block is optional `#` comment lines, one
command, a `----` line and the output that command is expected to print, ended by a
blank line:

    # v0 proposes once the block period has passed.
    tick 1
    ----
    v0 h1 r0: requested a block for round 0
    ...

Nothing happens on its own: a manual clock (`tick`) and an explicit pool of messages in
flight (`deliver`, `drop`, `stabilize`) drive N `QbftNode`s wrapped in the harness's
`SimNode` (chain, WAL, votes). Validators are named v0..vN-1 in sorted-address order,
spare keys (not in genesis) vN.. after them, and every address prefix in a printed line
is replaced by that name. A broadcast becomes one message per other node; a message to a
node that is down, or across the partition, is lost when sent, and a crash loses the
messages in flight to the crashed node. The configuration defaults to a 1 s block
period and a 2 s round-0 timeout that doubles per round (16 s at most); every node has
transactions pending unless `pending` says otherwise.

Commands (filters: from=, to= (comma lists of names), type= (PROPOSAL, PREPARE, COMMIT,
ROUND-CHANGE, SYNC, BLOCK; comma list), height=, round=):

    validators N [spare=K] [block_period=..] [round_timeout=..] [max_round_timeout=..]
                 [empty_block_period=..|none]   first command: build the network
    tick DT                   advance the clock by DT seconds and tick every live node
    deliver [filters]         deliver the matching messages now in flight, FIFO
    drop [filters]            lose the matching messages now in flight
    stabilize [filters]       deliver (matching) messages until none is in flight
    pool                      list the messages in flight
    crash vI / restart vI     lose everything but chain and WAL / start from them
    partition vA,vB | vC,..   only nodes on one side talk (in-flight crossings are lost)
    heal                      remove the partition
    vote vI add|remove vJ|0x… queue a vote for vI's next built blocks
    pending vI true|false     whether transactions wait in vI's pool
    forge-proposal vI round=R [ts=+S] [rcs=vA,..] [prepares=none|lock] [to=..]
                              Byzantine vI signs a PROPOSAL outside its state machine:
                              a fresh block on its head (timestamp now+S), justified by
                              the round changes for R it has received (or those of rcs=)
    status                    each node's height, round, lock and head
    wal vI                    vI's write-ahead log

After each command the interpreter prints, per node, the state machine's trace events,
blocks it committed, messages it re-sent from its WAL, sync traffic and blocks it
built; each delivery prints `from->to MESSAGE` with the recipient's reaction indented.
Two checks run all the time and print `!!` lines: no honest node sends two different
messages for the same (height, round, type), and no two nodes commit different blocks
at one height.

`run_file(path)` returns the file's text with the actual outputs; the test compares it
with the file. `RXLEDGER_UPDATE_TRACES=1` (or `python tests/sim/scripted.py --rewrite
FILE…`) writes the actual outputs into the files, except into a file whose header has a
line starting with `# BUG`: that trace is the correct behaviour of a known bug, written
by hand, and stays failing until the bug is fixed (then delete the paragraph).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import GENESIS_TIME, SimNode, build_block, make_genesis, validator_keys

from node.consensus.messages import (
    CODE_NAMES,
    PROPOSAL,
    Message,
    ProposalMsg,
    Signed,
    decode_message,
    describe,
    encode_message,
    prepared_of,
    sign_payload,
)
from node.consensus.qbft import QbftConfig
from node.consensus.validators import quorum
from rxledger.core.crypto import keccak256, private_key_to_address
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import Vote, decode_extra, recover_seal_signers, seal_hash

UPDATE_ENV = "RXLEDGER_UPDATE_TRACES"
MAX_DELIVERIES = 20_000
PIN_MARK = "# BUG"


class ScriptError(Exception):
    """A malformed script line."""


@dataclass
class Flight:
    """One message in flight from `src` to `dst`."""

    seq: int
    src: bytes
    dst: bytes
    kind: str  # "msg", "sync" (a request for blocks from `height`), "block"
    data: bytes = b""
    msg: Message | None = None
    height: int = 0
    block: Block | None = None

    @property
    def type(self) -> str:
        if self.msg is not None:
            return CODE_NAMES[self.msg.signed.code]
        return self.kind.upper()

    @property
    def round(self) -> int | None:
        return self.msg.signed.round if self.msg is not None else None


@dataclass
class World:
    """The simulated network: nodes, clock, messages in flight, and the trace."""

    sims: list[SimNode]
    names: dict[bytes, str]
    config: QbftConfig
    now: float = float(GENESIS_TIME)
    pool: list[Flight] = field(default_factory=list)
    seq: int = 0
    partition: list[set[bytes]] | None = None
    out: list[str] = field(default_factory=list)
    sent_by: dict[tuple[bytes, int, int, int], bytes] = field(default_factory=dict)
    ever_sent: set[bytes] = field(default_factory=set)
    decided: dict[int, tuple[bytes, str]] = field(default_factory=dict)

    # -- naming --------------------------------------------------------------------------
    def name(self, address: bytes) -> str:
        return self.names.get(address, "0x" + address.hex()[:8])

    def sim(self, name: str) -> SimNode:
        for s in self.sims:
            if self.names[s.address] == name:
                return s
        raise ScriptError(f"no node {name!r}")

    def address(self, token: str) -> bytes:
        if token.startswith("0x") and len(token) == 42:
            return bytes.fromhex(token[2:])
        return self.sim(token).address

    def readable(self, text: str) -> str:
        """Replace address hex (8-char prefixes, as events print them, or whole) by names."""
        def sub(m: re.Match[str]) -> str:
            word = m.group(0)
            for addr, nm in self.names.items():
                h = addr.hex()
                if word == h or word == h[:8]:
                    return nm
            return word
        return re.sub(r"(?<![0-9a-f])(?:[0-9a-f]{40}|[0-9a-f]{8})(?![0-9a-f])", sub, text)

    def say(self, text: str, indent: int = 0) -> None:
        self.out.append("  " * indent + self.readable(text))

    def t(self, at: float | None = None) -> str:
        return f"+{(self.now if at is None else at) - GENESIS_TIME:g}s"

    # -- formatting ----------------------------------------------------------------------
    def block_line(self, block: Block, with_hash: bool = True) -> str:
        extra = decode_extra(block.header.extra_data)
        vote = ""
        if extra.vote is not None:
            vote = f" vote={'+' if extra.vote.add else '-'}{self.name(extra.vote.validator)}"
        hash_ = f" {block.hash.hex()[:8]}" if with_hash else ""
        return (f"#{block.number}{hash_} by {self.name(block.header.coinbase)} "
                f"ts={block.header.timestamp - GENESIS_TIME}{vote}")

    def msg_line(self, msg: Message) -> str:
        text = describe(msg)
        if isinstance(msg, ProposalMsg):
            rcs = ",".join(self.name(s.author) + ("*" if prepared_of(s) else "")
                           for s in msg.round_changes)
            prepares = ",".join(self.name(s.author) for s in msg.prepares)
            text += f" [{self.block_line(msg.block, with_hash=False)}"
            text += f"; rcs {rcs}" if rcs else ""
            text += f"; prepares {prepares}" if prepares else ""
            text += "]"
        return text

    def flight_line(self, f: Flight) -> str:
        head = f"{self.name(f.src)}->{self.name(f.dst)} "
        if f.msg is not None:
            line = head + self.msg_line(f.msg)
            height = f.msg.signed.height
        elif f.kind == "sync":
            line, height = head + f"SYNC from #{f.height}", None
        else:
            assert f.block is not None
            line, height = head + f"BLOCK {self.block_line(f.block)}", None
        dst = self.by_address(f.dst)
        if height is not None and dst.node is not None and dst.node.height != height:
            line += f" ({self.name(f.dst)} is at h{dst.node.height})"
        return line

    def by_address(self, address: bytes) -> SimNode:
        for s in self.sims:
            if s.address == address:
                return s
        raise KeyError(address)

    # -- the network ---------------------------------------------------------------------
    def connected(self, a: bytes, b: bytes) -> bool:
        if self.partition is None:
            return True
        return any(a in side and b in side for side in self.partition)

    def enqueue(self, src: bytes, dst: bytes, kind: str, **kw: object) -> None:
        target = self.by_address(dst)
        if not target.up or not self.connected(src, dst):
            return  # no connection: the send is lost
        self.seq += 1
        self.pool.append(Flight(self.seq, src, dst, kind, **kw))  # type: ignore[arg-type]

    def broadcast(self, sim: SimNode, to: bytes | None, data: bytes) -> None:
        msg = decode_message(data)
        targets = [to] if to is not None else [s.address for s in self.sims if s is not sim]
        for t in targets:
            self.enqueue(sim.address, t, "msg", data=data, msg=msg)

    def flush(self, sim: SimNode, indent: int = 0) -> None:
        """Carry out the node's Ready: persist, send, apply, advance (and build blocks)."""
        node = sim.node
        assert node is not None
        name = self.name(sim.address)
        while True:
            ready = node.ready()
            if ready.empty() and not ready.events:
                return
            sim.apply(ready)  # the WAL first
            committed = list(ready.committed)
            for e in ready.events:
                self.say(f"{name} {e}", indent)
                if ": DECIDED block " in e and committed:
                    self.on_commit(sim, committed.pop(0), indent)
            for block in committed:
                self.on_commit(sim, block, indent)
            announced = [e.split(": sent ", 1)[1] for e in ready.events if ": sent " in e]
            for out in ready.messages:
                self.check_equivocation(sim, out.data, indent)
                msg = decode_message(out.data)
                if describe(msg) in announced:
                    announced.remove(describe(msg))
                else:
                    again = "byte-identical to its earlier send" if out.data in self.ever_sent \
                        else "NEVER SENT BEFORE"
                    self.say(f"{name} re-sent from WAL: {self.msg_line(msg)} "
                             f"wire={keccak256(out.data).hex()[:8]} ({again})", indent)
                self.ever_sent.add(out.data)
                self.broadcast(sim, out.to, out.data)
            for req in ready.sync:
                self.say(f"{name} asks {self.name(req.peer)} for blocks from #{req.from_height}", indent)
                self.enqueue(sim.address, req.peer, "sync", height=req.from_height)
            for push in ready.push:
                self.serve(sim, push.peer, push.from_height, "pushes", indent)
            request = ready.block_request
            node.advance(ready)
            if request is not None:
                block = sim.build(request.height, request.round)
                self.say(f"{name} built {self.block_line(block)} for r{request.round}", indent)
                node.propose(block)

    def serve(self, sim: SimNode, peer: bytes, from_height: int, verb: str, indent: int) -> None:
        blocks = sim.chain[max(from_height - 1, 0):]
        name, peer_name = self.name(sim.address), self.name(peer)
        if not blocks:
            self.say(f"{name} {verb} no blocks to {peer_name} (has none from #{from_height})", indent)
            return
        self.say(f"{name} {verb} blocks #{blocks[0].number}..#{blocks[-1].number} to {peer_name}", indent)
        for block in blocks:
            self.enqueue(sim.address, peer, "block", block=block)

    def on_commit(self, sim: SimNode, block: Block, indent: int) -> None:
        signers = ",".join(sorted(self.name(a) for a in recover_seal_signers(block.header)))
        name = self.name(sim.address)
        self.say(f"{name} committed {self.block_line(block)} round {decode_extra(block.header.extra_data).round} "
                 f"seals {signers}", indent)
        first = self.decided.setdefault(block.number, (block.hash, name))
        if first[0] != block.hash:
            self.say(f"!! SAFETY VIOLATION: {name} committed {block.hash.hex()[:8]} at #{block.number}, "
                     f"{first[1]} committed {first[0].hex()[:8]}", indent)

    def check_equivocation(self, sim: SimNode, data: bytes, indent: int) -> None:
        s = decode_message(data).signed
        key = (sim.address, s.height, s.round, s.code)
        earlier = self.sent_by.setdefault(key, data)
        if earlier != data:
            self.say(f"!! EQUIVOCATION: {self.name(sim.address)} signed two different "
                     f"{CODE_NAMES[s.code]} h{s.height} r{s.round}", indent)

    def deliver(self, f: Flight) -> None:
        self.say(self.flight_line(f))
        dst = self.by_address(f.dst)
        if dst.node is None:  # crashed after it was queued (crash empties its inbox)
            return
        if f.kind == "msg":
            dst.node.step(f.data)
        elif f.kind == "sync":
            self.serve(dst, f.src, f.height, "serves", 1)
            return
        else:
            assert f.block is not None
            dst.node.import_block(f.block)
        self.flush(dst, 1)

    # -- filters -------------------------------------------------------------------------
    def matcher(self, opts: dict[str, str]) -> Callable[[Flight], bool]:
        srcs = {self.address(n) for n in opts["from"].split(",")} if "from" in opts else None
        dsts = {self.address(n) for n in opts["to"].split(",")} if "to" in opts else None
        types = None
        if "type" in opts:
            types = {t.upper().replace("_", "-") for t in opts["type"].split(",")}
            types = {"ROUND-CHANGE" if t == "RC" else t for t in types}
        round_ = int(opts["round"]) if "round" in opts else None
        height = int(opts["height"]) if "height" in opts else None
        unknown = set(opts) - {"from", "to", "type", "round", "height"}
        if unknown:
            raise ScriptError(f"unknown filter(s) {sorted(unknown)}")

        def match(f: Flight) -> bool:
            if srcs is not None and f.src not in srcs:
                return False
            if dsts is not None and f.dst not in dsts:
                return False
            if types is not None and f.type not in types:
                return False
            if round_ is not None and f.round != round_:
                return False
            if height is not None and (f.msg is None or f.msg.signed.height != height):
                return False
            return True
        return match

    def take(self, opts: dict[str, str]) -> list[Flight]:
        match = self.matcher(opts)
        taken = [f for f in self.pool if match(f)]
        self.pool = [f for f in self.pool if not match(f)]
        return taken


# -- commands ------------------------------------------------------------------------------
def _options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    pos: list[str] = []
    opts: dict[str, str] = {}
    for a in args:
        if "=" in a:
            k, v = a.split("=", 1)
            opts[k] = v
        else:
            pos.append(a)
    return pos, opts


def _parse_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ScriptError(f"expected true or false, got {text!r}")
    return text == "true"


class Interpreter:
    """Runs one scenario's commands against a `World`, returning each command's output."""

    def __init__(self) -> None:
        self.world: World | None = None

    def run(self, line: str) -> list[str]:
        words = line.split()
        cmd, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ScriptError(f"unknown command {cmd!r}")
        if cmd != "validators" and self.world is None:
            raise ScriptError("the first command must be `validators N`")
        if self.world is not None:
            self.world.out = []
        handler(args)
        assert self.world is not None
        return self.world.out

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    def cmd_validators(self, args: list[str]) -> None:
        pos, opts = _options(args)
        n, spare = int(pos[0]), int(opts.pop("spare", "0"))
        empty = opts.pop("empty_block_period", "60")
        config = QbftConfig(
            block_period=float(opts.pop("block_period", "1")),
            round_timeout=float(opts.pop("round_timeout", "2")),
            max_round_timeout=float(opts.pop("max_round_timeout", "16")),
            empty_block_period=None if empty == "none" else float(empty),
        )
        if opts:
            raise ScriptError(f"unknown option(s) {sorted(opts)}")
        keys = validator_keys(n + spare)
        members = sorted(keys[:n], key=private_key_to_address)
        spares = sorted(keys[n:], key=private_key_to_address)
        genesis = make_genesis(tuple(private_key_to_address(k) for k in members))
        holder: list[World] = []
        sims = [SimNode(k, config, genesis, clock=lambda: holder[0].now) for k in members + spares]
        names = {s.address: f"v{i}" for i, s in enumerate(sims)}
        world = World(sims, names, config)
        holder.append(world)
        self.world = world
        world.out = []
        for s in sims:
            s.start()
        for s in sims:
            world.flush(s)
        vals = ",".join(names[s.address] for s in sims[:n])
        world.say(f"genesis validators {vals} (quorum {quorum(n)})"
                  + (f"; spare keys {','.join(names[s.address] for s in sims[n:])} (not in genesis) run as observers"
                     if spare else ""))

    def cmd_tick(self, args: list[str]) -> None:
        w = self.w
        w.now += float(args[0])
        for s in w.sims:
            if s.up and s.node is not None:
                s.node.tick(w.now)
                w.flush(s)

    def cmd_deliver(self, args: list[str]) -> None:
        _, opts = _options(args)
        taken = self.w.take(opts)
        if not taken:
            self.w.say("(no message matches)")
        for f in taken:
            self.w.deliver(f)

    def cmd_drop(self, args: list[str]) -> None:
        _, opts = _options(args)
        taken = self.w.take(opts)
        if not taken:
            self.w.say("(no message matches)")
        for f in taken:
            self.w.say("dropped " + self.w.flight_line(f))

    def cmd_stabilize(self, args: list[str]) -> None:
        _, opts = _options(args)
        count = 0
        while True:
            taken = self.w.take(opts)
            if not taken:
                break
            for f in taken:
                count += 1
                if count > MAX_DELIVERIES:
                    raise ScriptError(f"stabilize: more than {MAX_DELIVERIES} deliveries")
                self.w.deliver(f)

    def cmd_pool(self, args: list[str]) -> None:
        if not self.w.pool:
            self.w.say("(nothing in flight)")
        for f in self.w.pool:
            self.w.say(self.w.flight_line(f))

    def cmd_crash(self, args: list[str]) -> None:
        w = self.w
        sim = w.sim(args[0])
        sim.crash()
        w.say(f"{args[0]} crashed (keeps chain #{sim.head.number} and {len(sim.wal)} WAL records)")
        lost = [f for f in w.pool if f.dst == sim.address]
        w.pool = [f for f in w.pool if f.dst != sim.address]
        for f in lost:
            w.say("lost " + w.flight_line(f), 1)

    def cmd_restart(self, args: list[str]) -> None:
        w = self.w
        sim = w.sim(args[0])
        if sim.up:
            raise ScriptError(f"{args[0]} is running")
        records = [r for r in sim.wal if r.height > sim.head.number]
        w.say(f"{args[0]} restarts at h{sim.head.number + 1} from chain #{sim.head.number} "
              f"and {len(records)} WAL records")
        sim.start()
        w.flush(sim, 1)

    def cmd_partition(self, args: list[str]) -> None:
        w = self.w
        sides = " ".join(args).split("|")
        w.partition = [{w.address(n.strip()) for n in side.split(",") if n.strip()} for side in sides]
        lost = [f for f in w.pool if not w.connected(f.src, f.dst)]
        w.pool = [f for f in w.pool if w.connected(f.src, f.dst)]
        for f in lost:
            w.say("lost " + w.flight_line(f))

    def cmd_heal(self, args: list[str]) -> None:
        self.w.partition = None

    def cmd_vote(self, args: list[str]) -> None:
        w = self.w
        sim = w.sim(args[0])
        if args[1] not in ("add", "remove"):
            raise ScriptError("vote vI add|remove TARGET")
        sim.votes.append(Vote(w.address(args[2]), args[1] == "add"))
        w.say(f"{args[0]} will vote {args[1]} {w.name(w.address(args[2]))} in the blocks it builds")

    def cmd_pending(self, args: list[str]) -> None:
        sim = self.w.sim(args[0])
        sim.pending = _parse_bool(args[1])
        if sim.node is not None:
            sim.node.set_pending(sim.pending)
            self.w.flush(sim)

    def cmd_status(self, args: list[str]) -> None:
        w = self.w
        w.say(f"t={w.t()}")
        for s in w.sims:
            name = w.name(s.address)
            head = f"head=#{s.head.number}:{_header_hash(s)}"
            if s.node is None:
                w.say(f"{name} down {head}")
                continue
            node = s.node
            lock = node.h.lock
            lock_text = "-" if lock is None else f"r{lock.round}:{lock.digest.hex()[:8]} " \
                f"(block {lock.block.hash.hex()[:8]})"
            vals = node.h.validators
            role = "" if s.address in vals else " (observer)"
            ballots = " ".join(f"{'+' if add else '-'}{w.name(t)}:{','.join(sorted(w.name(v) for v in voters))}"
                               for t, add, voters in node.h.tally.ballots)
            w.say(f"{name}{role} h{node.height} r{node.round} lock={lock_text} {head} "
                  f"validators={','.join(sorted(w.name(v) for v in vals))} quorum={quorum(len(vals))}"
                  + (f" open-votes={ballots}" if ballots else ""))

    def cmd_wal(self, args: list[str]) -> None:
        w = self.w
        sim = w.sim(args[0])
        if not sim.wal:
            w.say("(empty)")
        for r in sim.wal:
            if r.kind == "signed":
                what = w.msg_line(decode_message(r.data))
                w.say(f"signed {what} wire={keccak256(r.data).hex()[:8]}")
            else:
                w.say(f"prepared h{r.height} r{r.round} (lock with its certificate)")

    def cmd_forge_proposal(self, args: list[str]) -> None:
        w = self.w
        pos, opts = _options(args)
        sim = w.sim(pos[0])
        node = sim.node
        if node is None or sim.key is None:
            raise ScriptError(f"{pos[0]} is down")
        round_ = int(opts.get("round", "0"))
        ts = int(w.now + float(opts.get("ts", "+0")))
        block = build_block(sim.head, sim.tally, sim.address, round_, ts)
        rcs = list(node.h.round_changes.get(round_, {}).values()) if round_ else []
        if "rcs" in opts:
            wanted = {w.address(n) for n in opts["rcs"].split(",")}
            rcs = [m for m in rcs if m.signed.author in wanted]
        rcs.sort(key=lambda m: m.signed.author)
        prepares: tuple[Signed, ...] = ()
        if opts.get("prepares", "none") == "lock" and node.h.lock is not None:
            prepares = node.h.lock.prepares
        signed = sign_payload(PROPOSAL, node.height, round_, (seal_hash(block.header),), sim.key, sim.address)
        msg = ProposalMsg(signed, block, tuple(m.signed for m in rcs), prepares)
        data = encode_message(msg)
        w.say(f"{pos[0]} (Byzantine) forged {w.msg_line(msg)}")
        to = opts.get("to")
        if to is None:
            w.broadcast(sim, None, data)
        else:
            for n in to.split(","):
                w.broadcast(sim, w.address(n), data)


def _header_hash(sim: SimNode) -> str:
    return sim.chain[-1].hash.hex()[:8] if sim.chain else "genesis"


# -- files -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One scenario block: the raw lines up to and including `----`, its command, its output."""

    head: list[str]
    command: str
    expected: list[str]


def parse_script(text: str) -> tuple[list[Case], list[str]]:
    """Split a scenario into blocks (and trailing lines after the last block)."""
    lines = text.split("\n")
    blocks: list[Case] = []
    head: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line != "----":
            head.append(line)
            i += 1
            continue
        commands = [c.split("#", 1)[0].strip() for c in head]
        commands = [c for c in commands if c]
        if len(commands) != 1:
            raise ScriptError(f"line {i + 1}: each `----` needs exactly one command above it, got {commands}")
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i] != "":
            expected.append(lines[i])
            i += 1
        blocks.append(Case(head + ["----"], commands[0], expected))
        head = []
        i += 1  # the blank line ending the output
    return blocks, head


def run_script(text: str) -> str:
    """Run a scenario; return its text with every expected output replaced by the actual one."""
    blocks, tail = parse_script(text)
    interp = Interpreter()
    parts: list[str] = []
    for b in blocks:
        try:
            actual = interp.run(b.command)
        except ScriptError as exc:
            actual = [f"error: {exc}"]
        parts.extend(b.head)
        parts.extend(actual)
        parts.append("")
    parts.extend(tail)
    result = "\n".join(parts)
    return result if result.endswith("\n") else result + "\n"


def is_pinned(text: str) -> bool:
    """A scenario whose header has a `# BUG` paragraph pins the correct behaviour of a known
    bug: updating must not overwrite it with the buggy output."""
    return any(line.startswith(PIN_MARK) for line in text.split("\n"))


def run_file(path: Path, update: bool | None = None) -> tuple[str, str]:
    """(expected text, actual text) of a scenario file; rewrites it when updating, unless
    it is pinned."""
    if update is None:
        update = os.environ.get(UPDATE_ENV) == "1"
    expected = path.read_text()
    actual = run_script(expected)
    if update and actual != expected and not is_pinned(expected):
        path.write_text(actual)
    return expected, actual


def main(argv: list[str]) -> int:
    rewrite = "--rewrite" in argv
    for name in [a for a in argv if a != "--rewrite"]:
        expected, actual = run_file(Path(name), update=rewrite)
        if not rewrite:
            sys.stdout.write(actual)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
