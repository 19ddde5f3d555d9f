#!/usr/bin/env bash
# Behaviour fingerprint: runs the quickstart and the SFT, GRPO, PPO, DPO, online DPO and ReST-EM recipes tiny
# (tests/behaviour/recipes/, fixed seeds) and prints one line per output file: the SHA-256 of every final weight file
# and of metrics.jsonl / summary.json with wall-clock fields removed. Two commits that print the same lines trained
# bit-identical weights and logged identical metrics on this machine.
#
#   tests/behaviour/fingerprint.sh > /tmp/after.txt && diff tests/behaviour/before.txt /tmp/after.txt
#   tests/behaviour/fingerprint.sh --hash-only DIR     # only hash the runs already in DIR
#
# About 4 minutes on 2 cores. Not part of the test suite (it trains seven runs); run it around a refactor.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${FINGERPRINT_OUT:-$(mktemp -d)}"; mkdir -p "$out"
[ "${1:-}" = "--hash-only" ] || dotnet build "$root/src/Sharpen.Cli" -c Release -v q -nologo >&2
cli=(dotnet "$root/src/Sharpen.Cli/bin/Release/net10.0/Sharpen.Cli.dll")
export SHARPEN_NUM_THREADS=2

if [ "${1:-}" = "--hash-only" ]; then out="$2"; fi
recipe() { sed "s#OUT/#$out/#g" "$here/recipes/$1.yaml" > "$out/$1.yaml"; echo "$out/$1.yaml"; }
run() { "${cli[@]}" "$@" > "$out/log-$RANDOM.txt" 2>&1 || { echo "failed: $*" >&2; exit 1; }; }

if [ "${1:-}" != "--hash-only" ]; then
run quickstart --out "$out/quickstart" --sft-steps 20 --train-problems 1000 --test-problems 20 --rl-iterations 2 --hidden-size 64 --layers 2
run train "$(recipe sft)"
# preference pairs: the worked solution is chosen, the same solution with its last character cut is rejected
"${cli[@]}" data make --task countdown --n 64 --seed 5 --out "$out/sftrows.jsonl" > /dev/null
python3 - "$out/sftrows.jsonl" "$out/pairs.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as g:
    for line in f:
        r = json.loads(line)
        g.write(json.dumps({"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"][:-2]}) + "\n")
PY
for r in grpo ppo dpo online-dpo rest-em; do run train "$(recipe $r)"; done
fi

python3 - "$out" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
# Wall-clock fields differ run to run. The keys added in this wave by design (a run's status, the count of skipped
# non-finite steps) and the output path are left out too, so older and newer commits compare on everything else.
IGNORED = {"final_checkpoint", "status", "skipped_nonfinite_steps"}
def timeless(o):
    if isinstance(o, dict):
        return {k: timeless(v) for k, v in o.items()
                if not any(t in k for t in ("second", "timing/", "_per_s", "elapsed", "memory/")) and k not in IGNORED}
    if isinstance(o, list): return [timeless(x) for x in o]
    return o
def h(b): return hashlib.sha256(b).hexdigest()[:16]
for dirpath, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    rel = os.path.relpath(dirpath, root)
    if rel.startswith("log") or "/checkpoints" in "/" + rel + "/" and not rel.endswith("checkpoints"): pass
    for f in sorted(files):
        p = os.path.join(dirpath, f); r = os.path.relpath(p, root)
        if f.endswith(".safetensors") and "/final" in "/" + r:
            print(r, h(open(p, "rb").read()))
        elif f == "metrics.jsonl":
            rows = [json.dumps(timeless(json.loads(l)), sort_keys=True) for l in open(p) if l.strip()]
            print(r, h("\n".join(rows).encode()), f"{len(rows)} rows")
        elif f == "summary.json":
            print(r, h(json.dumps(timeless(json.load(open(p))), sort_keys=True).encode()))
PY
