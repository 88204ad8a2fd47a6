"""RxLedger's native chaincode: the deterministic contract API and the built-in chaincodes.

    from chaincode_py import NativeChaincodeHost          # the host a Chain runs them with
    node.node.new_node(setup, chaincode=NativeChaincodeHost)   # the class is the factory:
    Chain(store, genesis, NativeChaincodeHost)                 # it is called with the store
    from chaincode_py import Chaincode, Context, abi      # writing a chaincode (api.py)

- `api`: `Chaincode` (ABI dispatch by selector from a Solidity artifact's ABI), `Context`
  (message, block, typed storage, events, reverts, gas), `Layout` (packed records), `Gas`.
- `prescriptions`, `governance`, `anchors`: PrescriptionRegistry (0x…1001), Governance
  (0x…1002) and AnchorRegistry (0x…1003), as docs/CONTRACTS.md specifies.
- `host`: `NativeChaincodeHost`, the `node.execution.chaincode.ChaincodeHost` that runs them
  over the node's store, with the journal and the block commitment.

The node does not import this package: whoever assembles a node (`rxledger.cli`, tests,
`network`) passes `NativeChaincodeHost` (a `node.chain.ChaincodeFactory`) to it.
"""

from chaincode_py.api import Chaincode, Context, EventDef, Gas, Layout, Revert, abi, error_data
from chaincode_py.host import NativeChaincodeHost, StaleChaincodeState, block_commitment

__all__ = [
    "Chaincode",
    "Context",
    "EventDef",
    "Gas",
    "Layout",
    "NativeChaincodeHost",
    "Revert",
    "StaleChaincodeState",
    "abi",
    "block_commitment",
    "error_data",
]
