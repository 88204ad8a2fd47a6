"""The dependency-light core shared by the node and the client SDK.

Types (transactions, headers with QBFT extraData, blocks, receipts), their RLP codec,
keccak and secp256k1 (`crypto`), the error tree (`errors`), the light client's rules
(`light_client`), the JSON wire codecs of Ethereum JSON-RPC (`wire`) and the compiled
contract artifacts (`artifacts`). It imports nothing of the node, the chaincode, the
SDK or the network tools, and needs neither py-evm nor plyvel.
"""

__version__ = "0.1.0"  # the one version: the wheel, `rxledger --version`, web3_clientVersion
