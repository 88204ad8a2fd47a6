"""Consortium bootstrap: identities, genesis, node configs, the local launcher, deployment.

    init_network(out_dir, orgs_spec=…, base_port=8545, …)  -> NetworkInfo   `network init`
    add_node(net_dir, org, name, observer=False)           -> NodeInfo      `network add-node`
    write_deployment(info, hosts=None)                     -> Path          `network deploy`
    up(net_dir, base_port=8545, detach=False, …)           -> list[str]     `rxledger up`
    down(net_dir)                                          -> list[str]     `rxledger down`
    load_node_config(path)                                 -> NodeFileConfig (node.toml)
    load_genesis(path)                                     -> GenesisConfig  (genesis.json)
    load_network(net_dir)                                  -> NetworkInfo    (network.json)

Modules: `config` (node.toml), `genesis` (genesis.json), `layout` (directory layout and
network.json), `init`, `deploy`, `launcher`, `pki` (org CAs, node TLS certificates),
`cli` (argparse commands), `errors`. Errors derive from `network.errors.NetworkError`,
itself a `rxledger.core.errors.NodeError`.
"""
