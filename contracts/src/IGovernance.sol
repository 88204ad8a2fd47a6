// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title IGovernance
/// @notice What RxLedger's business contracts ask of Governance. The native chaincode at
///         0x…1002 answers the same calls. See docs/CONTRACTS.md.
interface IGovernance {
    /// @notice One call with everything a contract needs to authorise `account`.
    /// @return org the account's organisation id (0 when not enrolled)
    /// @return kind the organisation's kind: 1 hospital, 2 pharmacy, 3 regulator (0 when not enrolled)
    /// @return role 1 prescriber, 2 hospital pharmacist, 3 pharmacist, 4 auditor, 5 org admin (0 none)
    /// @return accountSuspended the account itself is suspended (kept across revoke and re-enrolment)
    /// @return orgSuspended the account's organisation is suspended (false when not enrolled)
    function member(address account)
        external
        view
        returns (bytes32 org, uint8 kind, uint8 role, bool accountSuspended, bool orgSuspended);

    function roleOf(address account) external view returns (uint8);

    function orgOf(address account) external view returns (bytes32);

    function isSuspended(address account) external view returns (bool);

    function isEnrolled(address account) external view returns (bool);

    function orgKind(bytes32 org) external view returns (uint8);
}
