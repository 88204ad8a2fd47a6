"""RxLedger client SDK: hospitals, pharmacies and regulators work from FHIR documents.

Hospital systems issue FHIR MedicationRequests (only a salted commitment, a keyed patient
pseudonym and the dispensing terms reach the ledger) and hand the patient a
`PrescriptionToken`; pharmacies `verify` a presented token and `dispense`; regulators
read the history; any hospital system anchors record hashes with an `Anchorer` and checks
the receipts offline with `verify_receipt`. Every class has an asyncio twin (`AsyncHospital`, …) running the same
logic. Every error is a `ClientError` (see `client_sdk._errors` for the tree).

    from client_sdk import Hospital, Pharmacy
    issued = Hospital("http://127.0.0.1:8545", prescriber_key).issue(medication_request)
    check = Pharmacy("http://127.0.0.1:8545", pharmacist_key).verify(issued.token)

Where a class takes a node's URL it also takes a `web3.Web3` (`web3.AsyncWeb3` for the
twins): the hospital's own provider, middleware and signer then carry the SDK's requests
(see `client_sdk._web3`); `Contracts` gives the ledger's contracts as web3 contract objects.
The SDK needs none of the node's packages: only `rxledger.core`.
"""

from client_sdk._anchor import (
    Anchorer,
    AnchorProof,
    AnchorReceipt,
    AsyncAnchorer,
    Trust,
    verify_receipt,
    verify_receipts,
)
from client_sdk._commitment import (
    DEV_CONSORTIUM_KEY,
    canonical_bytes,
    commitment,
    patient_pseudonym,
)
from client_sdk._errors import (
    ClientError,
    CommitmentMismatch,
    InvalidFhir,
    NotFinal,
    NotFound,
    Refused,
    RpcError,
    TransportError,
    VerificationFailed,
)
from client_sdk._fhir import ScheduleTable
from client_sdk._merkle import leaf_hash, merkle_root
from client_sdk._prescriptions import (
    AsyncHospital,
    AsyncPharmacy,
    AsyncRegulator,
    DispenseResult,
    HistoryEntry,
    Hospital,
    IssuedPrescription,
    PatientActivity,
    Pharmacy,
    PrescriptionRecord,
    Regulator,
    TokenCheck,
)
from client_sdk._rpc import AsyncRpc, Rpc
from client_sdk._token import PrescriptionToken, decode_token, generate_pharmacy_key
from client_sdk._web3 import Contracts

__all__ = [
    "DEV_CONSORTIUM_KEY",
    "AnchorProof",
    "AnchorReceipt",
    "Anchorer",
    "AsyncAnchorer",
    "AsyncHospital",
    "AsyncPharmacy",
    "AsyncRegulator",
    "AsyncRpc",
    "ClientError",
    "CommitmentMismatch",
    "Contracts",
    "DispenseResult",
    "HistoryEntry",
    "Hospital",
    "InvalidFhir",
    "IssuedPrescription",
    "NotFinal",
    "NotFound",
    "PatientActivity",
    "Pharmacy",
    "PrescriptionRecord",
    "PrescriptionToken",
    "Refused",
    "Regulator",
    "Rpc",
    "RpcError",
    "ScheduleTable",
    "TokenCheck",
    "TransportError",
    "Trust",
    "VerificationFailed",
    "canonical_bytes",
    "commitment",
    "decode_token",
    "generate_pharmacy_key",
    "leaf_hash",
    "merkle_root",
    "patient_pseudonym",
    "verify_receipt",
    "verify_receipts",
]
