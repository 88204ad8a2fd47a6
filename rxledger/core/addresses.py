"""The reserved addresses of the built-in contracts, fixed in genesis.

A call to one of these runs the native chaincode (`chaincode_py`) on a node; the same ABI
(the committed Solidity artifacts) serves a Solidity deployment at any other address. The
node and the client SDK both take them from here.
"""

from __future__ import annotations

__all__ = ["ANCHOR_REGISTRY", "GOVERNANCE", "PRESCRIPTION_REGISTRY", "RESERVED"]

PRESCRIPTION_REGISTRY = bytes.fromhex("0000000000000000000000000000000000001001")
GOVERNANCE = bytes.fromhex("0000000000000000000000000000000000001002")
ANCHOR_REGISTRY = bytes.fromhex("0000000000000000000000000000000000001003")

#: Contract name (as in contracts/artifacts) by reserved address.
RESERVED = {
    PRESCRIPTION_REGISTRY: "PrescriptionRegistry",
    GOVERNANCE: "Governance",
    ANCHOR_REGISTRY: "AnchorRegistry",
}
