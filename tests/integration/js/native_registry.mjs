// ethers 6 against the native PrescriptionRegistry of a running RxLedger dev node.
//
// Run by tests/integration/test_native_registry_clients.py:
//   node native_registry.mjs < input.json > result.json
// input: {"rpc", "chainId", "address", "abi" (the Solidity artifact's ABI), "rxId",
//         "commitment", "patient", "dispenseCommitment",
//         "keys": {"prescriber", "reviewer", "pharmacist"}}
// Issues, reviews and dispenses the prescription `rxId` with `new ethers.Contract(address,
// abi, wallet)` over a JsonRpcProvider with a static network (no chain id detection),
// parses every receipt log with `contract.interface.parseLog`, reads the record back,
// queries the StatusChanged logs with a filter, and provokes two refusals (a static call
// and a transaction that ethers estimates first). Prints one JSON object; bigints as
// decimal strings. Exit 0 when it got that far (the Python test judges the contents).

import { readFileSync } from "node:fs";
import { ethers } from "ethers";

const input = JSON.parse(readFileSync(0, "utf8"));
const network = ethers.Network.from(input.chainId);
// cacheTimeout -1: ethers otherwise answers an identical request made within 250 ms from
// its cache. The dev chain makes a block per transaction at once, so a second review by
// the same wallet would reuse the first one's pending nonce and gas estimate (and resend
// the same signed transaction: "already known").
const provider = new ethers.JsonRpcProvider(input.rpc, network, {
  staticNetwork: network,
  pollingInterval: 50,
  cacheTimeout: -1,
});

function plain(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function parsed(contract, receipt) {
  return receipt.logs.map((log) => {
    const event = contract.interface.parseLog({ topics: [...log.topics], data: log.data });
    return {
      address: log.address,
      name: event.name,
      args: plain(event.args.toObject()),
    };
  });
}

function failure(err) {
  return {
    code: err.code ?? null,
    reason: err.reason ?? null,
    shortMessage: err.shortMessage ?? null,
    data: err.data ?? null,
    message: String(err.message).slice(0, 400),
    payload: err.payload ?? err.info?.payload ?? null,
    error: err.error ?? err.info?.error ?? null,
  };
}

async function send(contract, fn, args) {
  const tx = await contract[fn](...args);
  const receipt = await tx.wait(1, 60_000);
  return {
    hash: tx.hash,
    type: tx.type,
    status: receipt.status,
    blockNumber: receipt.blockNumber,
    events: parsed(contract, receipt),
  };
}

const out = { ethers: ethers.version };
const wallets = Object.fromEntries(
  Object.entries(input.keys).map(([role, key]) => [role, new ethers.Wallet(key, provider)]),
);
const registry = (role) => new ethers.Contract(input.address, input.abi, wallets[role]);

const network_ = await provider.getNetwork();
out.chainId = network_.chainId.toString();
const latest = await provider.getBlock("latest");
out.latestBlock = {
  number: latest.number,
  extraDataBytes: (latest.extraData.length - 2) / 2,
  timestamp: latest.timestamp,
};
const now = Math.max(latest.timestamp, Math.floor(Date.now() / 1000));

out.issue = await send(registry("prescriber"), "issue", [
  input.rxId, input.commitment, input.patient, 2, 2, 30, now - 60, now + 30 * 86400,
]);
out.review = await send(registry("reviewer"), "review", [input.rxId, true, ethers.ZeroHash]);
out.dispenseStaticCall = (await registry("pharmacist").dispense.staticCall(
  input.rxId, 30, input.dispenseCommitment)).toString();
out.dispense = await send(registry("pharmacist"), "dispense", [
  input.rxId, 30, input.dispenseCommitment,
]);
out.prescription = plain((await registry("pharmacist").getPrescription(input.rxId)).toObject());

const reader = registry("pharmacist");
const changes = await reader.queryFilter(reader.filters.StatusChanged(input.rxId), out.issue.blockNumber);
out.statusChangedLogs = changes.map((e) => ({
  name: e.eventName,
  blockNumber: e.blockNumber,
  args: plain(e.args.toObject()),
}));

// Refusals: the reason surfaces in the error.
try {
  await registry("prescriber").review.staticCall(input.rxId, true, ethers.ZeroHash);
  out.refusedStaticCall = null;
} catch (err) {
  out.refusedStaticCall = failure(err);
}
try {
  const tx = await registry("reviewer").review(input.rxId, true, ethers.ZeroHash);
  await tx.wait();
  out.refusedTransaction = null;
} catch (err) {
  out.refusedTransaction = failure(err);
}

process.stdout.write(JSON.stringify(out) + "\n");
provider.destroy();
