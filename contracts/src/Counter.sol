// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Counter
/// @notice Small example contract used to exercise RxLedger's EVM execution,
///         event logs, revert reasons and custom errors.
contract Counter {
    /// @notice Current counter value.
    uint256 public count;

    /// @notice Account that deployed the contract; the only one allowed to reset it.
    address public owner;

    /// @notice Emitted by `increment`.
    event Incremented(address indexed by, uint256 newCount);

    /// @notice Emitted by `set`.
    event CountSet(address indexed by, uint256 oldCount, uint256 newCount);

    /// @notice Raised by `reset` when called by anyone other than `owner`.
    error NotOwner(address caller);

    constructor(uint256 initial) {
        owner = msg.sender;
        count = initial;
    }

    /// @notice Adds one to `count` and returns the new value.
    function increment() external returns (uint256) {
        uint256 newCount = count + 1;
        count = newCount;
        emit Incremented(msg.sender, newCount);
        return newCount;
    }

    /// @notice Sets `count` to `value` (at most 1,000,000).
    function set(uint256 value) external {
        require(value <= 1000000, "Counter: value too large");
        uint256 oldCount = count;
        count = value;
        emit CountSet(msg.sender, oldCount, value);
    }

    /// @notice Always reverts with an Error(string) reason.
    function fail() external pure {
        revert("Counter: always fails");
    }

    /// @notice Resets `count` to zero; owner only.
    function reset() external {
        if (msg.sender != owner) {
            revert NotOwner(msg.sender);
        }
        count = 0;
    }
}
