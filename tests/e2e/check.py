#!/usr/bin/env python3
"""End checks of tests/e2e/run.sh, over JSON-RPC only (what any CometBFT client sees).

    check.py RPC0 RPC1 ... --accepted FILE

1. Every node holds the same chain: identical block ids for every height up to the lowest tip.
2. Every transfer the nodes accepted (hashes in FILE) is in exactly one block, with code 0;
   no transaction appears twice in the chain.
3. No validator was accused of double-signing: no block carries evidence, and the validator
   set at the tip has every genesis validator with its genesis power (nobody was slashed).

Exits 1 with one line per failure.
"""
import base64
import hashlib
import json
import sys
import urllib.request


def call(node, path):
    with urllib.request.urlopen(f"http://{node}/{path}", timeout=10) as r:
        body = json.load(r)
    if "error" in body:
        raise RuntimeError(f"{node}/{path}: {body['error']}")
    return body["result"]


def block_ids(node, upto):
    """Height -> block hash, from /blockchain (20 headers a page)."""
    ids = {}
    low = 1
    while low <= upto:
        high = min(low + 19, upto)
        r = call(node, f"blockchain?minHeight={low}&maxHeight={high}")
        for m in r["block_metas"]:
            ids[int(m["header"]["height"])] = m["block_id"]["hash"]
        low = high + 1
    return ids


def main():
    args = sys.argv[1:]
    accepted_file = args[args.index("--accepted") + 1]
    nodes = [a for a in args if a not in ("--accepted", accepted_file)]
    with open(accepted_file) as f:
        accepted = {line.strip().upper() for line in f if line.strip()}

    failures = []
    tip = min(int(call(n, "status")["sync_info"]["latest_block_height"]) for n in nodes)
    chains = [block_ids(n, tip) for n in nodes]
    for k, chain in enumerate(chains[1:], start=1):
        for h in range(1, tip + 1):
            if chain.get(h) != chains[0].get(h):
                failures.append(f"{nodes[k]} differs from {nodes[0]} at height {h}")
                break

    seen = {}
    evidence = []
    for h in range(1, tip + 1):
        block = call(nodes[0], f"block?height={h}")["block"]
        for tx in block["data"]["txs"] or []:
            digest = hashlib.sha256(base64.b64decode(tx)).hexdigest().upper()
            seen.setdefault(digest, []).append(h)
        for e in block["evidence"]["evidence"] or []:
            v = e["value"]["vote_a"]
            evidence.append(f"height {h}: validator {v['validator_address']} double-signed "
                            f"at height {v['height']} round {v['round']}")
    for digest, heights in seen.items():
        if len(heights) > 1:
            failures.append(f"transaction {digest} committed {len(heights)} times: heights {heights}")
    missing = sorted(accepted - seen.keys())
    for digest in missing[:10]:
        failures.append(f"accepted transfer {digest} is in no block up to height {tip}")
    if len(missing) > 10:
        failures.append(f"... and {len(missing) - 10} more accepted transfers are missing")
    for e in evidence:
        failures.append(f"evidence in the chain: {e}")

    genesis = call(nodes[0], "genesis")["genesis"]["validators"]
    now = {v["address"]: v["voting_power"] for v in call(nodes[0], f"validators?height={tip}")["validators"]}
    for v in genesis:
        if now.get(v["address"]) != v["power"]:
            failures.append(f"validator {v['address']} ({v.get('name', '')}) has power "
                            f"{now.get(v['address'], 'none')} at height {tip}, {v['power']} at genesis")

    for f in failures:
        print(f"check failed: {f}")
    if failures:
        sys.exit(1)
    print(f"checks passed: {len(nodes)} nodes agree on {tip} blocks; "
          f"{len(accepted)} accepted transfers each committed exactly once "
          f"({len(seen)} transactions in all); no evidence, no validator lost power")


if __name__ == "__main__":
    main()
