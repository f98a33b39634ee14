#!/usr/bin/env bash
# Run the fault tests (the failpoint matrix and the failing store) and write their table
# of outcomes, command x failpoint or fault x outcome, with the closing numbers, to
# benches/FAULTS.md. Each test appends its rows to the file CAIRN_FAULT_REPORT names
# (tests/common/fault_report.rs); this script renders them.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
CAIRN_FAULT_REPORT="$rows" cargo nextest run --features failpoints --test failpoints --test faults --no-fail-fast

python3 - "$rows" benches/FAULTS.md <<'EOF'
import re, subprocess, sys

rows, totals = [], {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "row":
        rows.append(f[1:])
    elif f[0] == "totals":
        t = totals.setdefault(f[1], [0, 0, 0, 0])
        for i in range(4):
            t[i] += int(f[2 + i])

spec = open("src/failpoint.rs").read()
named = re.findall(r'^\s+\(\s*"([a-z-]+:[a-z-]+)",', spec, re.M)
killed = {w.split("@")[0] for k, c, w, o in rows if k == "failpoint" and not w.startswith("write:")}
sweeps = sum(1 for k, c, w, o in rows if k == "failpoint" and w.startswith("write:"))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                     capture_output=True, text=True).stdout.strip()

out = ["# Fault proofs: kills and a failing store", "",
       "Written by `scripts/fault-report.sh` from a run of `tests/failpoints.rs` and",
       "`tests/faults.rs` (feature `failpoints`), on %s, %s cores." % (cpu or "this machine",
       subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()), "",
       "After every kill and every fault: every snapshot saved before (less those the command",
       "was asked to remove) is listed and restores byte- and metadata-identical to what it",
       "restored to when it was made; a snapshot stored but not yet reported restores whole;",
       "`check --read-data` is clean; the next run of the same command completes. A power cut",
       "cannot be tested here: format-spec/layout.md, \"Power loss\", gives the argument.", ""]
for kind, title in (("failpoint", "Kills (SIGKILL at a failpoint, or after the N-th backend write)"),
                    ("fault", "A failing store (CAIRN_FAULTS)")):
    out += ["## " + title, "", "| command | %s | outcome |" % kind, "|---|---|---|"]
    out += ["| %s | `%s` | %s |" % (c, w, o) for k, c, w, o in rows if k == kind]
    out.append("")
f, k = totals.get("failpoint", [0] * 4), totals.get("fault", [0] * 4)
out += ["## Closing numbers", "",
        "- failpoints covered: %d of %d named failpoints, plus %d kills after the N-th write"
        % (len(killed & set(named)), len(named), sweeps),
        "- kills survived: %d" % (f[1] + k[1]),
        "- faults injected: %d" % (f[2] + k[2]),
        "- snapshot restores verified identical: %d" % (f[3] + k[3]),
        "- snapshots lost: 0 (a lost or changed snapshot fails the run that would write this file)", ""]
open(sys.argv[2], "w").write("\n".join(out))
print("wrote", sys.argv[2])
EOF
