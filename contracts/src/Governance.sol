// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IGovernance} from "./IGovernance.sol";

/// @title Governance
/// @notice The consortium's members: organisations, accounts with one role each, account
///         and organisation suspensions, and the validator set, changed by a majority vote
///         of the organisations. Reference implementation of the native chaincode at
///         0x…1002; the behaviour (every check in order, every revert string, every event)
///         is specified in docs/CONTRACTS.md and must not change without it.
contract Governance is IGovernance {
    // Organisation kinds.
    uint8 internal constant HOSPITAL = 1;
    uint8 internal constant PHARMACY = 2;
    uint8 internal constant REGULATOR = 3;

    // Roles.
    uint8 internal constant PRESCRIBER = 1;
    uint8 internal constant HOSPITAL_PHARMACIST = 2;
    uint8 internal constant PHARMACIST = 3;
    uint8 internal constant AUDITOR = 4;
    uint8 internal constant ORG_ADMIN = 5;

    // Vote actions.
    uint8 internal constant ADD_ORG = 1;
    uint8 internal constant REMOVE_ORG = 2;
    uint8 internal constant ADD_VALIDATOR = 3;
    uint8 internal constant REMOVE_VALIDATOR = 4;

    struct Org {
        uint8 kind; // 0: no such organisation
        bool suspended;
        uint32 admins; // enrolled accounts with role ORG_ADMIN
        uint64 epoch; // unique per addition; accounts and votes of an earlier addition are void
        uint64 index; // position in _orgList plus one
    }

    struct Account {
        bytes32 org;
        uint64 epoch; // the org's epoch when enrolled
        uint8 role;
    }

    mapping(bytes32 => Org) private _orgs;
    bytes32[] private _orgList;
    uint64 private _epochs;

    mapping(address => Account) private _accounts;
    // Account suspensions outlive revocation and re-enrolment: a licence stays suspended.
    mapping(address => bool) private _accountSuspended;

    address[] private _validators;
    mapping(address => uint256) private _validatorIndex; // position plus one

    // proposal id => round (a passed proposal starts a new round with no votes)
    mapping(bytes32 => uint256) private _rounds;
    // ballot (proposal id, round) => org => the org's epoch when it voted
    mapping(bytes32 => mapping(bytes32 => uint64)) private _ballots;

    event OrgAdded(bytes32 indexed org, uint8 kind, address admin);
    event OrgRemoved(bytes32 indexed org);
    event AccountEnrolled(address indexed account, bytes32 indexed org, uint8 role, address by);
    event AccountRevoked(address indexed account, bytes32 indexed org, address by);
    event Suspended(address indexed account, bytes32 reason, address by);
    event Reinstated(address indexed account, address by);
    event OrgSuspended(bytes32 indexed org, bytes32 reason, address by);
    event OrgReinstated(bytes32 indexed org, address by);
    event Voted(
        bytes32 indexed proposal,
        bytes32 indexed org,
        address indexed voter,
        uint8 action,
        bytes32 subjectOrg,
        uint8 kind,
        address account,
        uint256 votes,
        uint256 orgCount
    );
    event ValidatorAdded(address indexed validator);
    event ValidatorRemoved(address indexed validator);

    /// @notice Genesis of the consortium. `orgIds[i]` (keccak256 of the name) has kind
    ///         `kinds[i]`; `accounts[i]` is enrolled in `accountOrgs[i]` with `roles[i]`;
    ///         `validators_` is the initial validator set.
    constructor(
        bytes32[] memory orgIds,
        uint8[] memory kinds,
        address[] memory accounts,
        bytes32[] memory accountOrgs,
        uint8[] memory roles,
        address[] memory validators_
    ) {
        require(orgIds.length == kinds.length, "Gov: length mismatch");
        require(accounts.length == accountOrgs.length && accounts.length == roles.length, "Gov: length mismatch");
        require(orgIds.length > 0, "Gov: no organisations");
        for (uint256 i = 0; i < orgIds.length; i++) {
            _checkNewOrg(orgIds[i], kinds[i]);
            _addOrg(orgIds[i], kinds[i], address(0));
        }
        for (uint256 i = 0; i < accounts.length; i++) {
            require(_orgs[accountOrgs[i]].kind != 0, "Gov: unknown organisation");
            _checkEnrolment(accounts[i], accountOrgs[i], roles[i]);
            _enroll(accounts[i], accountOrgs[i], roles[i]);
        }
        for (uint256 i = 0; i < validators_.length; i++) {
            _checkNewValidator(validators_[i]);
            _addValidator(validators_[i]);
        }
    }

    // ---------------------------------------------------------------- accounts

    /// @notice Enrol `account` in the caller's organisation with `role`.
    function enroll(address account, uint8 role) external {
        bytes32 org = _requireAdmin();
        _checkEnrolment(account, org, role);
        _enroll(account, org, role);
    }

    /// @notice Revoke an account of the caller's organisation.
    function revoke(address account) external {
        bytes32 org = _requireAdmin();
        require(_isEnrolled(account), "Gov: not enrolled");
        Account storage acc = _accounts[account];
        require(acc.org == org, "Gov: not of your organisation");
        if (acc.role == ORG_ADMIN) {
            require(_orgs[org].admins > 1, "Gov: last admin of the organisation");
            _orgs[org].admins -= 1;
        }
        delete _accounts[account];
        emit AccountRevoked(account, org, msg.sender);
    }

    // ------------------------------------------------------------- suspensions

    /// @notice Suspend an enrolled account (regulator auditor or admin).
    function suspend(address account, bytes32 reason) external {
        _requireRegulator();
        require(_isEnrolled(account), "Gov: not enrolled");
        require(account != msg.sender, "Gov: cannot suspend yourself");
        require(!_accountSuspended[account], "Gov: already suspended");
        _accountSuspended[account] = true;
        emit Suspended(account, reason, msg.sender);
    }

    /// @notice Lift an account's suspension, enrolled or not (regulator auditor or admin).
    function reinstate(address account) external {
        _requireRegulator();
        require(_accountSuspended[account], "Gov: not suspended");
        _accountSuspended[account] = false;
        emit Reinstated(account, msg.sender);
    }

    /// @notice Suspend an organisation and so all its accounts (regulator auditor or admin).
    function suspendOrg(bytes32 org, bytes32 reason) external {
        bytes32 own = _requireRegulator();
        Org storage o = _orgs[org];
        require(o.kind != 0, "Gov: unknown organisation");
        require(org != own, "Gov: cannot suspend own organisation");
        require(!o.suspended, "Gov: organisation already suspended");
        o.suspended = true;
        emit OrgSuspended(org, reason, msg.sender);
    }

    /// @notice Lift an organisation's suspension (regulator auditor or admin).
    function reinstateOrg(bytes32 org) external {
        _requireRegulator();
        Org storage o = _orgs[org];
        require(o.kind != 0, "Gov: unknown organisation");
        require(o.suspended, "Gov: organisation not suspended");
        o.suspended = false;
        emit OrgReinstated(org, msg.sender);
    }

    // ------------------------------------------------------------------- votes

    /// @notice Vote to add organisation `org` of `kind` with `admin` as its first org admin.
    function voteAddOrg(bytes32 org, uint8 kind, address admin) external {
        _requireAdmin();
        _checkNewOrg(org, kind);
        _checkNewAccount(admin);
        if (_vote(ADD_ORG, org, kind, admin)) {
            _addOrg(org, kind, admin);
            _enroll(admin, org, ORG_ADMIN);
        }
    }

    /// @notice Vote to remove organisation `org`; its accounts are no longer enrolled.
    function voteRemoveOrg(bytes32 org) external {
        _requireAdmin();
        require(_orgs[org].kind != 0, "Gov: unknown organisation");
        require(_orgList.length > 1, "Gov: last organisation");
        if (_vote(REMOVE_ORG, org, 0, address(0))) {
            uint256 i = _orgs[org].index - 1;
            bytes32 last = _orgList[_orgList.length - 1];
            _orgList[i] = last;
            _orgs[last].index = uint64(i + 1);
            _orgList.pop();
            delete _orgs[org];
            emit OrgRemoved(org);
        }
    }

    /// @notice Vote to add `validator` to the validator set.
    function voteAddValidator(address validator) external {
        _requireAdmin();
        _checkNewValidator(validator);
        if (_vote(ADD_VALIDATOR, bytes32(0), 0, validator)) {
            _addValidator(validator);
        }
    }

    /// @notice Vote to remove `validator` from the validator set.
    function voteRemoveValidator(address validator) external {
        _requireAdmin();
        require(_validatorIndex[validator] != 0, "Gov: not a validator");
        require(_validators.length > 1, "Gov: last validator");
        if (_vote(REMOVE_VALIDATOR, bytes32(0), 0, validator)) {
            uint256 i = _validatorIndex[validator] - 1;
            address last = _validators[_validators.length - 1];
            _validators[i] = last;
            _validatorIndex[last] = i + 1;
            _validators.pop();
            delete _validatorIndex[validator];
            emit ValidatorRemoved(validator);
        }
    }

    // ------------------------------------------------------------------- views

    function member(address account)
        external
        view
        returns (bytes32 org, uint8 kind, uint8 role, bool accountSuspended, bool orgSuspended)
    {
        accountSuspended = _accountSuspended[account];
        if (_isEnrolled(account)) {
            Account storage acc = _accounts[account];
            Org storage o = _orgs[acc.org];
            return (acc.org, o.kind, acc.role, accountSuspended, o.suspended);
        }
        return (bytes32(0), 0, 0, accountSuspended, false);
    }

    function roleOf(address account) external view returns (uint8) {
        return _isEnrolled(account) ? _accounts[account].role : 0;
    }

    function orgOf(address account) external view returns (bytes32) {
        return _isEnrolled(account) ? _accounts[account].org : bytes32(0);
    }

    function isEnrolled(address account) external view returns (bool) {
        return _isEnrolled(account);
    }

    function isSuspended(address account) external view returns (bool) {
        return _accountSuspended[account]
            || (_isEnrolled(account) && _orgs[_accounts[account].org].suspended);
    }

    function orgKind(bytes32 org) external view returns (uint8) {
        return _orgs[org].kind;
    }

    function isOrgSuspended(bytes32 org) external view returns (bool) {
        return _orgs[org].suspended;
    }

    function adminCount(bytes32 org) external view returns (uint256) {
        return _orgs[org].admins;
    }

    function orgs() external view returns (bytes32[] memory) {
        return _orgList;
    }

    function validators() external view returns (address[] memory) {
        return _validators;
    }

    function isValidator(address account) external view returns (bool) {
        return _validatorIndex[account] != 0;
    }

    /// @notice The id of a proposal: keccak256(abi.encode(action, org, kind, account)),
    ///         unused fields zero (1 add org, 2 remove org, 3 add validator, 4 remove validator).
    function proposalId(uint8 action, bytes32 org, uint8 kind, address account) public pure returns (bytes32) {
        return keccak256(abi.encode(action, org, kind, account));
    }

    /// @notice Votes the proposal holds now: organisations that voted in its current round.
    function votes(bytes32 proposal) public view returns (uint256 n) {
        bytes32 ballot = _ballot(proposal);
        for (uint256 i = 0; i < _orgList.length; i++) {
            bytes32 org = _orgList[i];
            if (_ballots[ballot][org] == _orgs[org].epoch) {
                n++;
            }
        }
    }

    function hasVoted(bytes32 proposal, bytes32 org) public view returns (bool) {
        uint64 epoch = _orgs[org].epoch;
        return epoch != 0 && _ballots[_ballot(proposal)][org] == epoch;
    }

    // ---------------------------------------------------------------- internal

    function _isEnrolled(address account) internal view returns (bool) {
        Account storage acc = _accounts[account];
        return acc.role != 0 && acc.epoch == _orgs[acc.org].epoch;
    }

    function _requireNotSuspended(address account) internal view {
        require(!_accountSuspended[account], "Gov: account suspended");
        require(!_orgs[_accounts[account].org].suspended, "Gov: organisation suspended");
    }

    function _requireAdmin() internal view returns (bytes32 org) {
        require(_isEnrolled(msg.sender) && _accounts[msg.sender].role == ORG_ADMIN, "Gov: not an org admin");
        _requireNotSuspended(msg.sender);
        return _accounts[msg.sender].org;
    }

    function _requireRegulator() internal view returns (bytes32 org) {
        Account storage acc = _accounts[msg.sender];
        require(
            _isEnrolled(msg.sender) && _orgs[acc.org].kind == REGULATOR
                && (acc.role == AUDITOR || acc.role == ORG_ADMIN),
            "Gov: not a regulator"
        );
        _requireNotSuspended(msg.sender);
        return acc.org;
    }

    function _checkNewOrg(bytes32 org, uint8 kind) internal view {
        require(org != bytes32(0), "Gov: zero org id");
        require(_orgs[org].kind == 0, "Gov: organisation exists");
        require(kind >= HOSPITAL && kind <= REGULATOR, "Gov: bad org kind");
    }

    function _checkNewAccount(address account) internal view {
        require(account != address(0), "Gov: zero address");
        require(!_isEnrolled(account), "Gov: already enrolled");
    }

    function _checkEnrolment(address account, bytes32 org, uint8 role) internal view {
        _checkNewAccount(account);
        require(role >= PRESCRIBER && role <= ORG_ADMIN, "Gov: bad role");
        uint8 kind = _orgs[org].kind;
        bool fits = role == ORG_ADMIN || (kind == HOSPITAL && (role == PRESCRIBER || role == HOSPITAL_PHARMACIST))
            || (kind == PHARMACY && role == PHARMACIST) || (kind == REGULATOR && role == AUDITOR);
        require(fits, "Gov: role does not fit the organisation");
    }

    function _checkNewValidator(address validator) internal view {
        require(validator != address(0), "Gov: zero address");
        require(_validatorIndex[validator] == 0, "Gov: already a validator");
    }

    function _addOrg(bytes32 org, uint8 kind, address admin) internal {
        _orgList.push(org);
        _epochs += 1;
        _orgs[org] = Org({kind: kind, suspended: false, admins: 0, epoch: _epochs, index: uint64(_orgList.length)});
        emit OrgAdded(org, kind, admin);
    }

    function _enroll(address account, bytes32 org, uint8 role) internal {
        _accounts[account] = Account({org: org, epoch: _orgs[org].epoch, role: role});
        if (role == ORG_ADMIN) {
            _orgs[org].admins += 1;
        }
        emit AccountEnrolled(account, org, role, msg.sender);
    }

    function _addValidator(address validator) internal {
        _validators.push(validator);
        _validatorIndex[validator] = _validators.length;
        emit ValidatorAdded(validator);
    }

    function _ballot(bytes32 proposal) internal view returns (bytes32) {
        return keccak256(abi.encode(proposal, _rounds[proposal]));
    }

    /// Records the caller's organisation's vote; true when the proposal now has more than
    /// half of the organisations (its round then ends: later votes start afresh).
    function _vote(uint8 action, bytes32 org, uint8 kind, address account) internal returns (bool passed) {
        bytes32 voterOrg = _accounts[msg.sender].org;
        bytes32 proposal = proposalId(action, org, kind, account);
        require(!hasVoted(proposal, voterOrg), "Gov: already voted");
        _ballots[_ballot(proposal)][voterOrg] = _orgs[voterOrg].epoch;
        uint256 n = votes(proposal);
        uint256 total = _orgList.length;
        emit Voted(proposal, voterOrg, msg.sender, action, org, kind, account, n, total);
        if (n * 2 > total) {
            _rounds[proposal] += 1;
            return true;
        }
        return false;
    }
}
