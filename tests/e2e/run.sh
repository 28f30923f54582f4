#!/usr/bin/env bash
# End-to-end: a Docker testnet (4 validators + 1 full node, one container each) under
# SIGKILL-and-start, pause, network disconnect and restart of every node in turn, then a 2|2
# partition of the validators, with transfers flowing. After each step the chain must
# advance again (the partition must first halt it); at the end (tests/e2e/check.py) every
# node must hold the same chain, every accepted transfer must be committed exactly once, and
# no validator may have been accused of double-signing.
#
#   tests/e2e/run.sh [--quick] [--static] [--broken]
#
#   --quick    perturb only validator 1 and the full node (not every node)
#   --static   build a statically linked release binary for the image (slower to build;
#              the default packs the debug build and the shared libraries it loads)
#   --broken   a deliberately broken validator: node1 is built with the `byzantine` feature
#              and double-prevotes from height 8; the run must FAIL, naming it
#
# Exit 0 on success, 1 with the reason on the first failed check; prints a report.
set -euo pipefail
cd "$(dirname "$0")/../.."
QUICK=0 STATIC=0 BROKEN=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        --static) STATIC=1 ;;
        --broken) BROKEN=1 ;;
        *) echo "usage: tests/e2e/run.sh [--quick] [--static] [--broken]"; exit 2 ;;
    esac
done
BASE=${BASALT_E2E_BASE_PORT:-29100}
PROJECT=basalt-e2e

say() { printf '[e2e %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { say "FAIL: $*"; exit 1; }
for tool in docker docker-compose curl python3 nsenter iptables; do
    command -v $tool >/dev/null || fail "$tool is required"
done

features=()
[ $BROKEN = 1 ] && features=(--features byzantine)
if [ $STATIC = 1 ]; then
    say "building a static release basalt"
    TARGET=x86_64-unknown-linux-gnu
    RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release --target $TARGET -p basalt-node "${features[@]}"
    BIN=target/$TARGET/release/basalt
else
    say "building basalt"
    cargo build -q -p basalt-node --bin basalt "${features[@]}"
    BIN=target/debug/basalt
fi
ctx=$(mktemp -d)
mkdir -p "$ctx/rootfs"
cp "$BIN" "$ctx/rootfs/basalt"
# The shared libraries the binary loads (none for a static build), at their own paths.
for lib in $(ldd "$BIN" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
cp tests/e2e/Dockerfile "$ctx/"
docker build -q -t basalt:local "$ctx" >/dev/null || fail "docker build"
rm -rf "$ctx"

work=$(mktemp -d)
net=$work/net
"$BIN" testnet --validators 4 --full-nodes 1 --output "$net" --base-port "$BASE" --docker \
    --chain-id basalt-e2e --timeout-propose-ms 1000 --timeout-commit-ms 200 >/dev/null
if [ $BROKEN = 1 ]; then
    python3 - "$net/docker-compose.yml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = 'container_name: basalt-node1\n    command: ["start", "--home", "/home/basalt"]'
assert old in s
open(p, "w").write(s.replace(old, old[:-1] + ', "--misbehave", "double-prevote@8"]'))
PY
    say "node1 is broken: it double-prevotes from height 8"
fi
compose() { (cd "$net" && docker-compose -p $PROJECT "$@"); }
cleanup() {
    touch "$work/stop"
    compose logs --no-color > "$work/logs.txt" 2>&1 || true
    compose down -v >/dev/null 2>&1 || true
    say "node logs kept in $work/logs.txt"
}
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true
compose up -d >/dev/null 2>&1 || fail "docker-compose up"

rpc() { echo "127.0.0.1:$((BASE + 2 * $1 + 1))"; }
height() {
    curl -s -m 2 "$(rpc "$1")/status" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["sync_info"]["latest_block_height"])' 2>/dev/null || echo 0
}
# The highest height any node but $1 reports.
others_tip() {
    local k best=0 h
    for k in 0 1 2 3 4; do
        [ "$k" = "$1" ] && continue
        h=$(height "$k")
        [ "$h" -gt "$best" ] && best=$h
    done
    echo "$best"
}
# Waits until node $1 is 3 blocks past the other nodes' tip as it was when called, that is
# until the chain advanced again and node $1 follows it; prints the seconds it took.
recovered() {
    local k=$1 start target
    start=$(date +%s.%N)
    target=$(( $(others_tip "$k") + 3 ))
    for _ in $(seq 1 600); do
        [ "$(height "$k")" -ge "$target" ] && { python3 -c "print(round($(date +%s.%N) - $start, 1))"; return 0; }
        sleep 0.1
    done
    return 1
}

for k in 0 1 2 3 4; do
    recovered "$k" >/dev/null || fail "node$k never started"
done
say "network up at height $(height 0)"

# Transfers in the background: account k sends to account k+1 through a node that is not
# being perturbed (a transfer accepted by a node that then dies may die with its mempool,
# as in CometBFT; the checks want every accepted transfer committed).
echo none > "$work/victim"
accepted=$work/accepted
touch "$accepted"
(
    i=0
    while [ ! -f "$work/stop" ]; do
        k=$((i % 4))
        via=$k
        [ "$(cat "$work/victim")" = "$via" ] && via=$(( (k + 1) % 5 ))
        to=$("$BIN" keys show --home "$net/node$(((k + 1) % 4))")
        if h=$("$BIN" tx transfer --to "$to" --amount 1 --home "$net/node$k" --node "$(rpc $via)" 2>/dev/null); then
            echo "$h" >> "$accepted"
        fi
        i=$((i + 1))
        sleep 0.2
    done
) &
sender=$!

report=()
step() {
    local what=$1 k=$2 t
    t=$(recovered "$k") || fail "$what of node$k: the chain did not advance within 60 s"
    report+=("$(printf '%-28s recovered in %5ss' "$what node$k" "$t")")
    say "$what node$k: recovered in ${t}s"
    echo none > "$work/victim"
}
victim() { echo "$1" > "$work/victim"; sleep 0.5; }
nodes="0 1 2 3 4"
[ $QUICK = 1 ] && nodes="1 4"
# each_node WHAT SECONDS DOWN UP: for every node in turn, DOWN k, wait, UP k, then wait for
# the chain to advance with node k following it.
each_node() {
    local what=$1 pause=$2 down=$3 up=$4 k
    for k in $nodes; do
        victim "$k"
        $down "$k"
        sleep "$pause"
        $up "$k"
        step "$what" "$k"
    done
}
kill_node() { docker kill -s KILL "basalt-node$1" >/dev/null; }
start_node() { docker start "basalt-node$1" >/dev/null; }
pause_node() { docker pause "basalt-node$1" >/dev/null; }
unpause_node() { docker unpause "basalt-node$1" >/dev/null; }
disconnect_node() { docker network disconnect "${PROJECT}_basalt" "basalt-node$1"; }
reconnect_node() { docker network connect --ip "172.30.0.$((10 + $1))" "${PROJECT}_basalt" "basalt-node$1"; }
restart_node() { docker restart -t 5 "basalt-node$1" >/dev/null; }
nothing() { :; }
each_node "SIGKILL and start" 2 kill_node start_node
each_node "pause and unpause" 3 pause_node unpause_node
each_node "disconnect and reconnect" 3 disconnect_node reconnect_node
each_node "restart" 0 restart_node nothing

# Partition: validators 2 and 3 (side B) lose every packet to and from validators 0, 1 and
# the full node (side A), by per-peer drops inside their network namespaces. Neither side
# has more than 2/3 of the power: the chain halts, then heals and resumes.
side_a="172.30.0.10 172.30.0.11 172.30.0.14"
partition() {
    local op=$1 k pid ip
    for k in 2 3; do
        pid=$(docker inspect -f '{{.State.Pid}}' basalt-node$k)
        for ip in $side_a; do
            nsenter -t "$pid" -n iptables "$op" INPUT -s "$ip" -j DROP
            nsenter -t "$pid" -n iptables "$op" OUTPUT -d "$ip" -j DROP
        done
    done
}
victim 2
partition -A
sleep 4
halted=$(height 0)
sleep 6
[ "$(height 0)" -le $((halted + 1)) ] || fail "the chain kept going with only half of the validators connected"
[ "$(height 2)" -le $((halted + 1)) ] || fail "side B kept going alone"
say "partitioned 2|2: halted at height $halted"
partition -D
step "heal 2|2 partition" 2
step "heal 2|2 partition" 0

touch "$work/stop"
wait "$sender" || true
say "transfers stopped; waiting for the mempools to drain"
sleep 5
for k in 0 1 2 3 4; do
    recovered "$k" >/dev/null || fail "node$k does not follow the chain"
done
say "final checks at height $(height 0)"
nodes_rpc=()
for k in 0 1 2 3 4; do nodes_rpc+=("$(rpc "$k")"); done
python3 tests/e2e/check.py "${nodes_rpc[@]}" --accepted "$accepted" || fail "end checks (above)"

echo
echo "e2e report ($(wc -l < "$accepted") transfers accepted)"
printf '  %s\n' "${report[@]}"
say "PASS"
