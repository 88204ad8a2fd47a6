// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IGovernance} from "./IGovernance.sol";

/// @title PrescriptionRegistry
/// @notice Every e-prescription from issue through pharmacist review to dispensing, with no
///         patient data: a commitment to the FHIR MedicationRequest and a patient pseudonym.
///         Reference implementation of the native chaincode at 0x…1001; the behaviour (every
///         check in order, every revert string, every event) is specified in
///         docs/CONTRACTS.md and must not change without it.
contract PrescriptionRegistry {
    // Status codes (FHIR MedicationRequest.status).
    uint8 internal constant NONE = 0;
    uint8 internal constant DRAFT = 1;
    uint8 internal constant ACTIVE = 2;
    uint8 internal constant ON_HOLD = 3;
    uint8 internal constant COMPLETED = 4;
    uint8 internal constant CANCELLED = 5;
    uint8 internal constant STOPPED = 6;
    uint8 internal constant ENTERED_IN_ERROR = 7;

    // Role bits (1 << role) for the caller checks.
    uint256 internal constant PRESCRIBER = 1 << 1;
    uint256 internal constant HOSPITAL_PHARMACIST = 1 << 2;
    uint256 internal constant PHARMACIST = 1 << 3;
    uint256 internal constant ORG_ADMIN = 1 << 5;

    bytes32 internal constant EXPIRED = "expired";

    struct Prescription {
        bytes32 commitment;
        bytes32 patient;
        address prescriber;
        bytes32 hospital;
        uint8 schedule;
        uint16 fillsAllowed;
        uint16 fillsUsed;
        uint32 quantityPerFill;
        uint64 quantityDispensed;
        uint64 validFrom;
        uint64 validUntil;
        uint8 status;
        uint64 issuedAt;
    }

    IGovernance public immutable governance;

    mapping(bytes32 => Prescription) private _rx;

    event Issued(
        bytes32 indexed rxId,
        bytes32 indexed hospital,
        address indexed prescriber,
        bytes32 patient,
        uint8 schedule,
        bytes32 commitment
    );
    event StatusChanged(bytes32 indexed rxId, uint8 from, uint8 to, address by, bytes32 reason);
    event Dispensed(
        bytes32 indexed rxId,
        bytes32 indexed pharmacy,
        address indexed pharmacist,
        uint16 fillNumber,
        uint32 quantity,
        bytes32 dispenseCommitment
    );

    constructor(address governance_) {
        require(governance_ != address(0), "Rx: zero governance");
        governance = IGovernance(governance_);
    }

    /// @notice A prescriber of a hospital issues a new prescription (status draft).
    function issue(
        bytes32 rxId,
        bytes32 commitment,
        bytes32 patient,
        uint8 schedule,
        uint16 fillsAllowed,
        uint32 quantityPerFill,
        uint64 validFrom,
        uint64 validUntil
    ) external {
        bytes32 hospital = _caller(PRESCRIBER, "Rx: not a prescriber");
        require(rxId != bytes32(0), "Rx: zero id");
        require(_rx[rxId].status == NONE, "Rx: id already used");
        require(commitment != bytes32(0), "Rx: zero commitment");
        require(patient != bytes32(0), "Rx: zero patient");
        require(fillsAllowed != 0, "Rx: fillsAllowed is 0");
        require(quantityPerFill != 0, "Rx: quantityPerFill is 0");
        require(validUntil > validFrom, "Rx: validUntil not after validFrom");
        require(validUntil > block.timestamp, "Rx: validUntil not in the future");

        Prescription storage p = _rx[rxId];
        p.commitment = commitment;
        p.patient = patient;
        p.prescriber = msg.sender;
        p.hospital = hospital;
        p.schedule = schedule;
        p.fillsAllowed = fillsAllowed;
        p.quantityPerFill = quantityPerFill;
        p.validFrom = validFrom;
        p.validUntil = validUntil;
        p.status = DRAFT;
        p.issuedAt = uint64(block.timestamp);
        emit Issued(rxId, hospital, msg.sender, patient, schedule, commitment);
        emit StatusChanged(rxId, NONE, DRAFT, msg.sender, bytes32(0));
    }

    /// @notice A hospital pharmacist of the issuing hospital, not the prescriber, approves
    ///         (draft → active) or rejects (draft → cancelled).
    function review(bytes32 rxId, bool approve, bytes32 reason) external {
        bytes32 org = _caller(HOSPITAL_PHARMACIST, "Rx: not a hospital pharmacist");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(msg.sender != p.prescriber, "Rx: cannot review own prescription");
        require(p.status == DRAFT, "Rx: not a draft");
        _setStatus(rxId, p, approve ? ACTIVE : CANCELLED, reason);
    }

    /// @notice A prescriber or hospital pharmacist of the issuing hospital holds an active
    ///         prescription (active → on-hold).
    function hold(bytes32 rxId, bytes32 reason) external {
        bytes32 org = _caller(PRESCRIBER | HOSPITAL_PHARMACIST, "Rx: not a prescriber or hospital pharmacist");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(p.status == ACTIVE, "Rx: not active");
        _setStatus(rxId, p, ON_HOLD, reason);
    }

    /// @notice A prescriber or hospital pharmacist of the issuing hospital resumes a held
    ///         prescription (on-hold → active).
    function resume(bytes32 rxId) external {
        bytes32 org = _caller(PRESCRIBER | HOSPITAL_PHARMACIST, "Rx: not a prescriber or hospital pharmacist");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(p.status == ON_HOLD, "Rx: not on hold");
        _setStatus(rxId, p, ACTIVE, bytes32(0));
    }

    /// @notice The issuing hospital cancels a prescription nothing was dispensed on yet
    ///         (draft/active/on-hold → cancelled).
    function cancel(bytes32 rxId, bytes32 reason) external {
        bytes32 org = _caller(PRESCRIBER | HOSPITAL_PHARMACIST | ORG_ADMIN, "Rx: not hospital staff");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(_isOpen(p.status), "Rx: prescription closed");
        require(p.fillsUsed == 0, "Rx: already dispensed");
        _setStatus(rxId, p, CANCELLED, reason);
    }

    /// @notice The issuing hospital stops a prescription after at least one fill
    ///         (active/on-hold → stopped).
    function stop(bytes32 rxId, bytes32 reason) external {
        bytes32 org = _caller(PRESCRIBER | HOSPITAL_PHARMACIST | ORG_ADMIN, "Rx: not hospital staff");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(_isOpen(p.status), "Rx: prescription closed");
        require(p.fillsUsed != 0, "Rx: nothing dispensed");
        _setStatus(rxId, p, STOPPED, reason);
    }

    /// @notice An org admin of the issuing hospital marks any prescription entered-in-error.
    function markEnteredInError(bytes32 rxId, bytes32 reason) external {
        bytes32 org = _caller(ORG_ADMIN, "Rx: not an org admin");
        Prescription storage p = _existing(rxId);
        require(org == p.hospital, "Rx: not of the issuing hospital");
        require(p.status != ENTERED_IN_ERROR, "Rx: already entered in error");
        _setStatus(rxId, p, ENTERED_IN_ERROR, reason);
    }

    /// @notice A pharmacist of a pharmacy records one fill; the last fill completes the
    ///         prescription. Returns the fill's number (1 for the first).
    function dispense(bytes32 rxId, uint32 quantity, bytes32 dispenseCommitment)
        external
        returns (uint16 fillNumber)
    {
        bytes32 pharmacy = _caller(PHARMACIST, "Rx: not a pharmacist");
        Prescription storage p = _existing(rxId);
        // Fills left first: a second attempt on the last fill (completed) says so.
        require(p.fillsUsed < p.fillsAllowed, "Rx: no fills left");
        uint8 status = p.status;
        if (status != ACTIVE) {
            if (status == DRAFT) revert("Rx: not reviewed yet");
            if (status == ON_HOLD) revert("Rx: on hold");
            if (status == CANCELLED) revert("Rx: cancelled");
            if (status == STOPPED) revert("Rx: stopped");
            if (status == ENTERED_IN_ERROR) revert("Rx: entered in error");
            revert("Rx: not active");
        }
        require(block.timestamp >= p.validFrom, "Rx: not valid yet");
        require(block.timestamp <= p.validUntil, "Rx: expired");
        require(quantity != 0, "Rx: quantity is 0");
        require(quantity <= p.quantityPerFill, "Rx: quantity above the per-fill limit");

        fillNumber = p.fillsUsed + 1;
        p.fillsUsed = fillNumber;
        p.quantityDispensed += quantity;
        emit Dispensed(rxId, pharmacy, msg.sender, fillNumber, quantity, dispenseCommitment);
        if (fillNumber == p.fillsAllowed) {
            _setStatus(rxId, p, COMPLETED, bytes32(0));
        }
    }

    /// @notice Anyone stops a draft, active or on-hold prescription whose validity has
    ///         ended (block time > validUntil), with reason "expired".
    function expire(bytes32 rxId) external {
        Prescription storage p = _existing(rxId);
        require(_isOpen(p.status), "Rx: prescription closed");
        require(block.timestamp > p.validUntil, "Rx: not expired yet");
        _setStatus(rxId, p, STOPPED, EXPIRED);
    }

    /// @notice The record of `rxId`; all zeros (status 0, none) when it was never issued.
    function getPrescription(bytes32 rxId) external view returns (Prescription memory) {
        return _rx[rxId];
    }

    // ---------------------------------------------------------------- internal

    /// Caller checks, in order: role in `roles`, account not suspended, organisation not
    /// suspended. Returns the caller's organisation.
    function _caller(uint256 roles, string memory notRole) internal view returns (bytes32 org) {
        (bytes32 org_,, uint8 role, bool accountSuspended, bool orgSuspended) = governance.member(msg.sender);
        require(role != 0 && (roles >> role) & 1 == 1, notRole);
        require(!accountSuspended, "Rx: account suspended");
        require(!orgSuspended, "Rx: organisation suspended");
        return org_;
    }

    function _existing(bytes32 rxId) internal view returns (Prescription storage p) {
        p = _rx[rxId];
        require(p.status != NONE, "Rx: unknown prescription");
    }

    function _isOpen(uint8 status) internal pure returns (bool) {
        return status == DRAFT || status == ACTIVE || status == ON_HOLD;
    }

    function _setStatus(bytes32 rxId, Prescription storage p, uint8 to, bytes32 reason) internal {
        emit StatusChanged(rxId, p.status, to, msg.sender, reason);
        p.status = to;
    }
}
