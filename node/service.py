"""A running node: store, chain, txpool and the consensus runtime wired from one config.

`NodeService` is what the RPC layer talks to. Blocks are made by the QBFT state machine
driven by `node.runtime.ConsensusRuntime`; the dev chain runs it with one validator (the
dev validator key) and no peers, so a block is proposed as soon as transactions wait and
is final when written, by the same code path as a consortium network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from node.chain import Chain, ChaincodeFactory
from node.config import NodeConfig
from node.consensus.qbft import QbftConfig
from node.execution.chaincode import GOVERNANCE, ChaincodeHost
from node.genesis import GenesisConfig
from node.p2p.allowlist import governance_org_ids, org_id
from node.runtime import ConsensusRuntime, Gathering, Transport
from node.storage import open_store
from node.storage.base import KeyValueStore
from node.txpool.pool import TxPool
from rxledger.core.crypto import private_key_to_address
from rxledger.core.errors import NodeError, StorageError, TxPoolRefused
from rxledger.core.types.blocks import Block
from rxledger.core.types.headers import Vote, is_valid_org_name
from rxledger.core.types.receipts import Receipt
from rxledger.core.types.transactions import decode_transaction

log = logging.getLogger("rxledger.node")


class NodeService:
    """The node's parts, and the operations RPC exposes over them."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: GenesisConfig,
        *,
        validator_key: bytes | None = None,
        chaincode: ChaincodeHost | ChaincodeFactory,
        store: KeyValueStore | None = None,
    ) -> None:
        self.config = config
        self.store = store if store is not None else open_store(
            str(config.data_dir / "chaindata") if config.data_dir else None,
            full_check=config.storage_full_check,
        )
        # chaincode: the host or its factory, chosen by whoever assembles the node (node.node)
        self.chain = Chain(self.store, genesis, chaincode)
        self.pool = TxPool(
            chain_id=genesis.chain_id,
            block_gas_limit=self.chain.head.gas_limit,
            state_nonce=self.chain.state_nonce,
            is_enrolled=self.chain.is_enrolled,
            limits=config.pool,
            state_balance=lambda address: self.chain.executor.get_balance(self.chain.head.state_root, address),
        )
        self.chain.add_listener(self._on_block)
        self.validator_key = validator_key
        self.validator = private_key_to_address(validator_key) if validator_key else None
        self.pending_votes: dict[bytes, bool] = {}
        self.pending_vote_orgs: dict[bytes, str] = {}  # the organisation of a validator to add
        self._new_block = threading.Condition()
        self.runtime: ConsensusRuntime | None = None
        # Sends an admitted transaction to the peers (set when the node has a p2p layer).
        self.gossip: Callable[[bytes], None] | None = None

    # -- transactions ----------------------------------------------------------------------
    def submit_raw_transaction(self, raw: bytes, *, gossip: bool = True) -> bytes:
        """Decode (recovering the sender once), admit to the pool, tell the peers (unless
        it came from one); returns the hash."""
        if len(raw) > self.config.pool.max_tx_size:
            raise TxPoolRefused(
                f"oversized transaction: {len(raw)} bytes, the limit is {self.config.pool.max_tx_size}"
            )
        stx = decode_transaction(raw)
        if self.chain.locate_transaction(stx.hash) is not None:
            raise TxPoolRefused(f"already known: transaction 0x{stx.hash.hex()} is in a final block")
        tx_hash = self.pool.add(stx)
        if self.runtime is not None:
            self.runtime.arrived()
        if gossip and self.gossip is not None:
            self.gossip(raw)
        return tx_hash

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce for `address` counting its waiting transactions."""
        return self.pool.next_nonce(address)

    def status(self) -> dict[str, Any]:
        """Head, consensus position, validators and peers, as JSON (`GET /health`).

        `status` is "ok", or why the node cannot be relied on: "storage failed: …" (the
        consensus runtime stopped on a `StorageError`), "consensus stopped: …" (it
        stopped on anything else), or "syncing: N blocks behind" (peers announce a head
        more than `health_max_blocks_behind` ahead of ours)."""
        runtime = self.runtime
        out: dict[str, Any] = {"status": "ok", "node": self.config.node_name, "chainId": self.chain.chain_id,
                               "genesisHash": "0x" + self.chain.genesis_hash.hex()}
        try:
            head = self.chain.head
            out.update({
                "head": head.number,
                "headHash": "0x" + head.hash.hex(),
                "headTimestamp": head.timestamp,
                "txpool": len(self.pool),
                "validator": "0x" + self.validator.hex() if self.validator else None,
                "validators": ["0x" + v.hex() for v in self.chain.validators_at(head.number + 1)],
            })
            if runtime is not None:
                out["height"] = runtime.node.height
                out["round"] = runtime.node.round
                out["peers"] = runtime.peers()
        except StorageError as exc:  # the store failed under us: say so rather than fail /health
            out["status"] = f"storage failed: {exc}"
            return out
        failed = runtime.failed if runtime is not None else None
        if isinstance(failed, StorageError):
            out["status"] = f"storage failed: {failed}"
        elif failed is not None:
            out["status"] = f"consensus stopped: {type(failed).__name__}: {failed}".rstrip(": ")
        else:
            # Only validators' announced heads count: two observers announcing a false head
            # would otherwise make every validator answer 503 (and an orchestrator restart it).
            validators = {v.lower() for v in out["validators"]}
            announced = [p for p in out.get("peers", []) if str(p.get("address", "")).lower() in validators]
            behind = self._blocks_behind(announced, out["head"], len(out["validators"]))
            if behind > self.config.health_max_blocks_behind:
                out["status"] = f"syncing: {behind} blocks behind"
        return out

    @staticmethod
    def _blocks_behind(peers: list[dict[str, Any]], head: int, validators: int) -> int:
        """How far our head is behind the network's, as our peers announce it.

        A single peer could announce any head; the network's head is taken as the
        (f+1)-th highest announced (f = the faults the validator set tolerates), which at
        least one honest peer has reached when at most f lie. With fewer peers, the lowest."""
        heads = sorted((p["head"] for p in peers if isinstance(p.get("head"), int)), reverse=True)
        if not heads:
            return 0
        f = (validators - 1) // 3
        return max(0, int(heads[min(f, len(heads) - 1)]) - head)

    # -- votes (QBFT validator changes) ----------------------------------------------------
    def propose_vote(self, validator: bytes, add: bool, org: str | None = None) -> None:
        """Vote (in the headers this node proposes) to add or remove `validator`. Adding
        names the new validator's organisation (`org`), required where genesis binds
        validators to organisations: its certificate must then come from that org's CA."""
        if org is not None and not add:
            raise NodeError("a vote to remove a validator names no organisation")
        if org is not None and not is_valid_org_name(org):
            raise NodeError(f"{org!r} is not an organisation name (lowercase letters, digits and '-')")
        if add and org is None and self.chain.genesis.validator_orgs:
            raise NodeError("this network binds each validator to its organisation: name the new "
                            "validator's organisation, qbft_proposeValidatorVote(address, true, \"<org>\")")
        if org is not None:
            known = {name for name, _ in self.chain.genesis.organisations()}
            known |= {o for _, o in self.chain.genesis.validator_orgs}
            governed = governance_org_ids(self.chain)
            if known and org not in known and (governed is None or org_id(org) not in governed):
                raise NodeError(f"no organisation {org!r} in this network (known: {', '.join(sorted(known))})")
        if self.config.dev:
            current = self.chain.validators_at(self.chain.head.number + 1)
            if add and validator not in current:
                raise NodeError(
                    "the dev chain has one validator and cannot seal with a second one it does "
                    "not run; use `rxledger up` for a network whose validators can change"
                )
            if not add and validator in current and len(current) == 1:
                raise NodeError("refusing to remove the only validator of the dev chain")
        self.pending_votes[validator] = add
        if org is not None:
            self.pending_vote_orgs[validator] = org
        else:
            self.pending_vote_orgs.pop(validator, None)

    def take_vote(self) -> Vote | None:
        current = self.chain.validators_at(self.chain.head.number + 1)
        for validator, add in list(self.pending_votes.items()):
            if add == (validator in current):
                del self.pending_votes[validator]  # already in effect
                self.pending_vote_orgs.pop(validator, None)
                continue
            return Vote(validator, add, self.pending_vote_orgs.get(validator) if add else None)
        return None

    # -- blocks ----------------------------------------------------------------------------
    def _on_block(self, block: Block, receipts: list[Receipt]) -> None:
        self.pool.remove(list(block.transactions))
        self.pool.prune()
        if any(log.address == GOVERNANCE for receipt in receipts for log in receipt.logs):
            # Membership may have changed: a revoked sender's waiting transactions go too.
            self.pool.drop_senders(lambda sender: not self.chain.is_enrolled(sender))
        with self._new_block:
            self._new_block.notify_all()

    def wait_for_block(self, after: int, timeout: float) -> bool:
        """Wait until the head passes block number `after`."""
        deadline = time.monotonic() + timeout
        with self._new_block:
            while self.chain.head.number <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._new_block.wait(left)
        return True

    def start_consensus(self, config: QbftConfig, transport: Transport | None = None,
                        gathering: Gathering | None = None) -> ConsensusRuntime:
        """Start the QBFT runtime (a validator when this node holds a validator key)."""
        self.runtime = ConsensusRuntime(
            self.chain, self.pool, config, self.validator_key, transport=transport,
            take_vote=self.take_vote, gathering=gathering,
        )
        self.runtime.start()
        return self.runtime

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        self.store.close()
