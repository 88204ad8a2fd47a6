"""AnchorRegistry, natively, at 0x…1003: roots of Merkle batches of record hashes, each
anchored once by an enrolled account (docs/CONTRACTS.md; the same checks, revert strings,
event and views as `contracts/src/AnchorRegistry.sol`).

State (keys within the chaincode's namespace):

    a ‖ root (32)   the number of the block that anchored it (absent: never anchored)
"""

from __future__ import annotations

from chaincode_py import governance
from chaincode_py.api import ZERO32, Chaincode, Context, abi
from rxledger.core.addresses import ANCHOR_REGISTRY, GOVERNANCE


def _key(root: bytes) -> bytes:
    return b"a" + root


class AnchorRegistry(Chaincode):
    artifact = "AnchorRegistry"
    address = ANCHOR_REGISTRY

    @abi("anchor")
    def anchor(self, ctx: Context, root: bytes, size: int, meta: bytes) -> None:
        _org, _kind, role, account_suspended, org_suspended = governance.member(
            ctx.view_of(GOVERNANCE), ctx.sender)
        ctx.require(role != 0, "Anchor: not enrolled")
        ctx.require(not account_suspended, "Anchor: account suspended")
        ctx.require(not org_suspended, "Anchor: organisation suspended")
        ctx.require(root != ZERO32, "Anchor: zero root")
        ctx.require(size != 0, "Anchor: size is 0")
        ctx.require(ctx.get_uint(_key(root)) == 0, "Anchor: root already anchored")
        ctx.put_uint(_key(root), ctx.block_number % (1 << 64))  # uint64(block.number)
        ctx.emit(self.events["Anchored"], root, ctx.sender, size, meta)

    @abi("anchoredAt")
    def anchored_at(self, ctx: Context, root: bytes) -> int:
        return ctx.get_uint(_key(root))

    @abi("governance")
    def governance(self, ctx: Context) -> bytes:
        return GOVERNANCE
