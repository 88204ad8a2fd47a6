// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IGovernance} from "./IGovernance.sol";

/// @title AnchorRegistry
/// @notice Roots of Merkle batches of record hashes (RFC 6962/9162 trees built by the SDK),
///         each anchored once by an enrolled account. Reference implementation of the native
///         chaincode at 0x…1003; the behaviour is specified in docs/CONTRACTS.md.
contract AnchorRegistry {
    IGovernance public immutable governance;

    mapping(bytes32 => uint64) private _anchoredAt;

    event Anchored(bytes32 indexed root, address indexed by, uint64 size, bytes32 meta);

    constructor(address governance_) {
        require(governance_ != address(0), "Anchor: zero governance");
        governance = IGovernance(governance_);
    }

    /// @notice Anchor the root of a tree of `size` leaves; `meta` is the caller's own label
    ///         (for instance a batch id or a hash of the batch's description).
    function anchor(bytes32 root, uint64 size, bytes32 meta) external {
        (,, uint8 role, bool accountSuspended, bool orgSuspended) = governance.member(msg.sender);
        require(role != 0, "Anchor: not enrolled");
        require(!accountSuspended, "Anchor: account suspended");
        require(!orgSuspended, "Anchor: organisation suspended");
        require(root != bytes32(0), "Anchor: zero root");
        require(size != 0, "Anchor: size is 0");
        require(_anchoredAt[root] == 0, "Anchor: root already anchored");
        _anchoredAt[root] = uint64(block.number);
        emit Anchored(root, msg.sender, size, meta);
    }

    /// @notice The number of the block that anchored `root`; 0 if it never was.
    function anchoredAt(bytes32 root) external view returns (uint64 blockNumber) {
        return _anchoredAt[root];
    }
}
