"""Validators bound to organisations: the vote encoding, the tally, genesis, node.toml,
and the allowlist's rules on a real chain (MemoryStore) with the native Governance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rlp

from chaincode_py import NativeChaincodeHost
from network.config import PeerConfig, load_node_config, node_config_to_dict, save_node_config
from network.errors import ConfigError
from network.genesis import genesis_to_json, load_genesis, make_genesis, save_genesis
from node.chain import Chain
from node.consensus.validators import VoteTally, apply_votes, tally_vote
from node.genesis import DEV_ORGS, GenesisConfig, dev_genesis
from node.p2p.allowlist import AllowedPeer, ConsortiumAllowlist, governance_org_ids, org_id
from node.p2p.peers import P2PBudgets
from node.p2p.service import P2PConfig
from node.storage import MemoryStore
from rxledger.core.errors import InvalidBlock
from rxledger.core.types.headers import QbftExtra, Vote, decode_extra, encode_extra

A, B, C, D, E = (bytes([n]) * 20 for n in range(1, 6))


# -- the header vote ------------------------------------------------------------------------
def extra_with(vote: Vote | None) -> QbftExtra:
    return QbftExtra(b"\x00" * 32, (A, B), vote, 0, ())


def test_an_addition_naming_its_organisation_round_trips() -> None:
    encoded = encode_extra(extra_with(Vote(E, True, "hospital-a")))
    assert decode_extra(encoded).vote == Vote(E, True, "hospital-a")
    assert rlp.decode(encoded)[2] == [E, b"\xff", b"hospital-a"]


def test_besu_two_item_votes_stay_valid() -> None:
    for vote in (Vote(E, True), Vote(E, False)):
        encoded = encode_extra(extra_with(vote))
        assert len(rlp.decode(encoded)[2]) == 2
        assert decode_extra(encoded).vote == vote


@pytest.mark.parametrize(("items", "message"), [
    ([E, b"\x00", b"hospital-a"], "a vote to remove a validator names no organisation"),
    ([E, b"\xff", b"Hospital A"], "lowercase DNS label"),
    ([E, b"\xff", b""], "lowercase DNS label"),
    ([E, b"\xff", b"a" * 64], "lowercase DNS label"),
    ([E, b"\xff", b"hospital-a\n"], "lowercase DNS label"),
    ([E, b"\xff", b"x", b"y"], "vote must be"),
])
def test_malformed_votes_are_refused_with_a_reason(items: list[bytes], message: str) -> None:
    data = rlp.encode([b"\x00" * 32, [A, B], items, 0, []])
    with pytest.raises(InvalidBlock, match=message):
        decode_extra(data)


def test_encoding_refuses_an_organisation_on_a_removal() -> None:
    with pytest.raises(ValueError, match="names no organisation"):
        encode_extra(extra_with(Vote(E, False, "hospital-a")))


# -- the tally ------------------------------------------------------------------------------
def test_the_tally_binds_a_validator_added_with_its_organisation() -> None:
    tally = VoteTally((A, B, C, D))
    for voter in (A, B, C):
        tally = tally_vote(tally, voter, Vote(E, True, "pharmacy-a"))
    assert tally.validators == (A, B, C, D, E) and tally.org_of(E) == "pharmacy-a"
    assert VoteTally.decode(tally.encode()) == tally
    # Removed: the binding goes with it.
    for voter in (A, B, C):
        tally = tally_vote(tally, voter, Vote(E, False))
    assert E not in tally.validators and tally.org_of(E) is None


def test_votes_naming_different_organisations_are_different_ballots() -> None:
    tally = VoteTally((A, B, C, D))
    tally = tally_vote(tally, A, Vote(E, True, "hospital-a"))
    tally = tally_vote(tally, B, Vote(E, True, "hospital-b"))
    tally = tally_vote(tally, C, Vote(E, True, "hospital-a"))
    assert E not in tally.validators  # 2 for hospital-a, 1 for hospital-b: no majority
    assert VoteTally.decode(tally.encode()) == tally
    # A's newer vote (for hospital-b) replaces its older one: still no majority for either.
    tally = tally_vote(tally, A, Vote(E, True, "hospital-b"))
    assert E not in tally.validators
    tally = tally_vote(tally, D, Vote(E, True, "hospital-b"))
    assert E in tally.validators and tally.org_of(E) == "hospital-b"


def test_a_tally_without_organisations_encodes_as_before() -> None:
    tally = tally_vote(VoteTally((A, B, C, D)), A, Vote(E, True))
    old_layout = rlp.encode([[A, B, C, D], [[E, 1, [A]]]])
    assert tally.encode() == old_layout and VoteTally.decode(old_layout) == tally
    assert apply_votes((A, B, C, D), [(v, Vote(E, True, "x")) for v in (A, B, C)]) == (A, B, C, D, E)


# -- genesis ---------------------------------------------------------------------------------
def test_genesis_without_bindings_encodes_as_before_and_with_them_round_trips(tmp_path: Path) -> None:
    dev = dev_genesis()
    assert "validator_orgs" not in json.loads(dev.encode())
    genesis = make_genesis(2024, [A, B], timestamp=0, orgs=DEV_ORGS, validator_orgs={A: "hospital-a", B: "regulator"})
    assert genesis.validator_org(A) == "hospital-a" and genesis.validator_org(C) is None
    assert GenesisConfig.decode(genesis.encode()) == genesis
    save_genesis(tmp_path / "genesis.json", genesis)
    assert load_genesis(tmp_path / "genesis.json") == genesis
    assert genesis_to_json(genesis)["validator_orgs"] == [["0x" + A.hex(), "hospital-a"], ["0x" + B.hex(), "regulator"]]


@pytest.mark.parametrize(("bindings", "message"), [
    ([["0x" + C.hex(), "hospital-a"]], "is not one of the validators"),
    ([["0x" + A.hex(), "nowhere"]], "must name an organisation of the genesis"),
    ([["0x" + A.hex(), "hospital-a"], ["0x" + A.hex(), "regulator"]], "is bound twice"),
    ([["0x" + A.hex()]], "must be \\[validator address, organisation\\]"),
    ({"0x" + A.hex(): "hospital-a"}, "must be a list"),
])
def test_genesis_file_bindings_are_checked(tmp_path: Path, bindings: object, message: str) -> None:
    data = genesis_to_json(make_genesis(2024, [A, B], timestamp=0, orgs=DEV_ORGS))
    data["validator_orgs"] = bindings
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_genesis(path)


# -- node.toml -------------------------------------------------------------------------------
def test_peer_entries_carry_org_and_role_and_p2p_budgets_are_read(tmp_path: Path) -> None:
    from network.init import init_network

    info = init_network(tmp_path / "net", observers=1, deploy=False)
    node = info.nodes[0]
    config = load_node_config(node.config)
    by_name = {p.name: p for p in config.peers}
    assert by_name["hospital-b"].org == "hospital-b" and by_name["hospital-b"].role == "validator"
    assert by_name["observer-1"].org == "regulator" and by_name["observer-1"].role == "observer"
    genesis = load_genesis(info.dir / "genesis.json")
    assert {org for _, org in genesis.validator_orgs} == {n.org for n in info.nodes if n.is_validator}

    raw = node_config_to_dict(config)
    raw["p2p"].update(max_connections_per_ip=4, peer_message_rate=50)
    import tomli_w

    node.config.write_text(tomli_w.dumps(raw))
    loaded = load_node_config(node.config)
    assert dict(loaded.p2p_budgets) == {"max_connections_per_ip": 4, "peer_message_rate": 50.0}
    p2p = P2PConfig(host="h", port=1, address=A, chain_id=1, genesis_hash=b"\x00" * 32, **dict(loaded.p2p_budgets))  # type: ignore[arg-type]
    assert p2p.max_connections_per_ip == 4 and p2p.max_pending_handshakes == P2PBudgets().max_pending_handshakes
    save_node_config(loaded, node.config)
    assert load_node_config(node.config) == loaded

    for bad, message in ((0, "at least 1"), (1.5, "whole number"), ("x", "whole number")):
        raw["p2p"]["max_connections_per_ip"] = bad
        node.config.write_text(tomli_w.dumps(raw))
        with pytest.raises(ConfigError, match=f"p2p.max_connections_per_ip: must be a {message}|{message}"):
            load_node_config(node.config)
    raw["p2p"]["max_connections_per_ip"] = 4
    raw["p2p"]["peer_message_rat"] = 5
    node.config.write_text(tomli_w.dumps(raw))
    with pytest.raises(ConfigError, match="p2p.peer_message_rat: unknown setting"):
        load_node_config(node.config)


def test_peer_config_defaults_keep_old_files_valid() -> None:
    assert PeerConfig("x", A, "h", 1) == PeerConfig("x", A, "h", 1, None, None)


# -- the allowlist on a real chain -----------------------------------------------------------
def chain_with(validators: tuple[bytes, ...], bindings: dict[bytes, str]) -> Chain:
    genesis = make_genesis(2024, validators, timestamp=0, orgs=DEV_ORGS, validator_orgs=bindings)
    return Chain(MemoryStore(), genesis, NativeChaincodeHost)


def test_the_allowlist_binds_and_refuses_as_documented() -> None:
    chain = chain_with((A, B), {A: "hospital-a", B: "hospital-b"})
    allowlist = ConsortiumAllowlist(chain, [
        AllowedPeer("b", B, "hospital-b", "validator"),
        AllowedPeer("obs", C, "regulator", "observer"),
        AllowedPeer("new", D, "pharmacy-a", "validator"),  # issued by add-node, not voted in yet
    ])
    assert allowlist.refusal(A) is None and allowlist.org_of(A) == "hospital-a"
    assert allowlist.refusal(B) is None and allowlist.org_of(B) == "hospital-b"
    assert allowlist.refusal(C) is None and allowlist.org_of(C) == "regulator"
    assert allowlist.refusal(D) is None and allowlist.org_of(D) == "pharmacy-a"
    assert allowlist.refusal(E) == f"address 0x{E.hex()} is not on the allowlist"
    assert allowlist.org_of(E) is None


def test_a_validator_bound_to_no_organisation_is_refused_where_the_network_binds_them() -> None:
    # C validates (say, added by a vote that named no organisation) but nothing binds it:
    # any organisation's CA could certify its address, so it is refused, saying why.
    chain = chain_with((A, B, C), {A: "hospital-a", B: "hospital-b"})
    allowlist = ConsortiumAllowlist(chain, [])
    assert allowlist.org_of(C) is None
    refusal = allowlist.refusal(C)
    assert refusal is not None and "bound to no organisation" in refusal
    assert allowlist.refusal(A) is None


def test_governance_org_ids_reads_the_native_governance() -> None:
    chain = chain_with((A,), {A: "hospital-a"})
    assert governance_org_ids(chain) == {org_id(name) for name, _ in DEV_ORGS}


# -- the light client (node and SDK) across an addition that names its organisation ---------
def test_the_light_client_walks_a_sealed_chain_whose_addition_names_an_organisation() -> None:
    from node.genesis import derive_dev_key
    from rxledger.core.crypto import encode_signature, private_key_to_address, sign_hash
    from rxledger.core.light_client import TrustedState, verify_chain
    from rxledger.core.types.headers import seal_hash

    keys = {private_key_to_address(k): k for k in (derive_dev_key(i) for i in range(260, 265))}
    addresses = sorted(keys)
    initial, joiner = addresses[:4], addresses[4]
    genesis = make_genesis(2024, initial, timestamp=1_700_000_000, orgs=DEV_ORGS,
                           validator_orgs=dict(zip(initial, [o for o, _ in DEV_ORGS], strict=True)))
    chain = Chain(MemoryStore(), genesis, NativeChaincodeHost)
    for n, voter in enumerate([initial[0], initial[1], initial[2], initial[3], joiner], start=1):
        vote = Vote(joiner, True, "pharmacy-a") if n <= 3 else None
        block, execution = chain.build_block([], timestamp=1_700_000_000 + n, proposer=voter, vote=vote)
        seals = [encode_signature(*sign_hash(seal_hash(block.header), keys[a])) for a in chain.validators_at(n)]
        chain.commit_block(chain.seal(block, seals), execution)
    assert chain.tally_after(chain.head).org_of(joiner) == "pharmacy-a"
    assert joiner in chain.validators_at(5)
    headers = [chain.header_by_number(n) for n in range(6)]
    trusted = verify_chain(TrustedState.from_genesis(headers[0], chain.genesis_hash), headers[1:])  # type: ignore[arg-type]
    assert trusted.height == 5
    allowlist = ConsortiumAllowlist(chain, [])
    assert allowlist.refusal(joiner) is None and allowlist.org_of(joiner) == "pharmacy-a"


# -- qbft_proposeValidatorVote's organisation ------------------------------------------------
def test_a_vote_to_add_names_a_known_organisation_where_genesis_binds_validators() -> None:
    from node.config import NodeConfig
    from node.service import NodeService
    from rxledger.core.errors import NodeError

    genesis = make_genesis(2024, [A, B, C, D], timestamp=0, orgs=DEV_ORGS,
                           validator_orgs=dict(zip([A, B, C, D], [o for o, _ in DEV_ORGS], strict=True)))
    node = NodeService(NodeConfig(data_dir=None), genesis, chaincode=NativeChaincodeHost)
    with pytest.raises(NodeError, match="name the new validator's organisation"):
        node.propose_vote(E, True)
    with pytest.raises(NodeError, match="no organisation 'hospital-z' in this network"):
        node.propose_vote(E, True, "hospital-z")
    with pytest.raises(NodeError, match="is not an organisation name"):
        node.propose_vote(E, True, "Hospital A")
    with pytest.raises(NodeError, match="a vote to remove a validator names no organisation"):
        node.propose_vote(D, False, "regulator")
    node.propose_vote(E, True, "pharmacy-a")
    node.propose_vote(D, False)
    votes = [node.take_vote()]
    assert votes[0] in (Vote(E, True, "pharmacy-a"), Vote(D, False))
    assert node.pending_votes == {E: True, D: False}
    node.close()


def test_without_bindings_the_organisation_stays_optional() -> None:
    from node.config import NodeConfig
    from node.service import NodeService

    node = NodeService(NodeConfig(data_dir=None), make_genesis(2024, [A, B], timestamp=0, orgs=DEV_ORGS), chaincode=NativeChaincodeHost)
    node.propose_vote(E, True)
    assert node.take_vote() == Vote(E, True, None)
    node.close()
