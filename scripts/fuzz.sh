#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (address sanitizer on), seeds their corpora, runs each in turn, and prints
# one line per target: executions, exec/s, coverage (libFuzzer's cov: edges and ft: features at the end), corpus
# size, and whether it ended clean (exit 0 and no crash, leak, timeout or OOM artefact).
#
#   scripts/fuzz.sh [--runs N | --seconds S] [TARGET...]
#
#   --seconds S   run each target for S seconds (default: 30, a smoke run)
#   --runs N      run each target for N executions (docs/fuzzing.md: 10,000,000 each)
#   TARGET        translate offload sync xml config pcap nat64 (default: all, one after another)
#
# FUZZ_DIR (default .build-fuzz/run) holds corpus/TARGET (grows from run to run; delete it for a fresh start),
# seeds/TARGET and TARGET.dict (remade each run by scripts/lib/fuzz_seeds.py), crashes/TARGET/ (the artefacts) and
# logs/TARGET.log (libFuzzer's output). To reproduce an artefact: .build-fuzz/release/fuzz-TARGET FILE.
# The machine is shared: run it under nice (nice -n 15 scripts/fuzz.sh ...).
#
# Why a SwiftPM package of its own (Fuzz/Package.swift, depending on this one by path) rather than direct swiftc
# calls: the targets reach TunnatKit, which needs Yams (Swift and C), swift-log and the C shims; SwiftPM builds all
# of that with the same flags, so every module, ours and Yams' libyaml included, is instrumented for coverage and
# checked by ASan, with no list of modules to keep in step here. Being a separate package (as Benchmarks/ is), it
# never slows or breaks `swift build` and `swift test` of tunnat, and its executables need no `main` of their own:
# libFuzzer's is linked in. Its scratch path, .build-fuzz, keeps the sanitized objects apart from .build.
# The flags go through -Xswiftc/-Xcc as ONE sanitizer list: SwiftPM's `--sanitize=fuzzer --sanitize=address` hands
# swiftc two separate -sanitize= flags in no fixed order, and the Swift driver keeps only the last, so a build
# came out either without coverage (libFuzzer then finds nothing) or without ASan. -parse-as-library keeps swiftc
# from giving a target's file (top-level globals, no @main) a script `main` of its own; SwiftPM links `main` to the
# `<module>_main` each target defines, which starts libFuzzer's driver (Fuzz/Sources/CFuzzerDriver).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null   # the system libraries tunnat's targets link (libssl, libcurl, liburing)
all=(translate offload sync xml config pcap nat64)
limit=(-max_total_time=30)
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) limit=(-runs="$2"); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      [[ " ${all[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target $1 (targets: ${all[*]})" >&2; exit 2; }
      targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
[ -d ../shared/testdata/pcaps ] || { echo "fuzz.sh: ../shared/testdata/pcaps is missing (the packet seeds)" >&2; exit 1; }

# Swift's own backtracer and ASan's handler fight over a crash; libFuzzer's report (with the stack) is enough.
export SWIFT_BACKTRACE=enable=no
scratch=.build-fuzz
work=${FUZZ_DIR:-$scratch/run}
echo "fuzz.sh: building ${targets[*]} (release, -sanitize=fuzzer,address) in $scratch"
# One product at a time: a plain `swift build` there would also link the tunnat executable, whose own main
# collides with libFuzzer's.
for t in "${targets[@]}"; do
  # With pipefail the pipeline fails when the build does (the filter never fails: `|| true` inside it).
  swift build -c release --package-path Fuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address \
    --product "fuzz-$t" 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|__asan_extra_spill_area|Cannot export local symbol' || true; } \
    || { echo "fuzz.sh: building fuzz-$t failed" >&2; exit 1; }
done
rm -rf "$work/seeds"
python3 scripts/lib/fuzz_seeds.py "$work" "${targets[@]}"
echo "fuzz.sh: artefacts go to $work/crashes/TARGET/, logs to $work/logs/"

rows=()
failed=0
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  crashes=$work/crashes/$t
  log=$work/logs/$t.log
  mkdir -p "$corpus" "$crashes" "$work/logs"
  args=(-print_final_stats=1 -artifact_prefix="$crashes/" -timeout=25 -rss_limit_mb=2048 "${limit[@]}")
  [ -f "$work/$t.dict" ] && args+=(-dict="$work/$t.dict")
  # FUZZ_NAT64_LEAKS=0 runs fuzz-nat64 without LeakSanitizer (its NATs keep state from input to input, which
  # costs a leak check now and then; about a fifth of the rate).
  [ "$t" = nat64 ] && args+=(-detect_leaks="${FUZZ_NAT64_LEAKS:-1}")
  before=$(find "$crashes" -type f | wc -l)
  echo "fuzz.sh: $t: $scratch/release/fuzz-$t ${args[*]} $corpus $work/seeds/$t"
  start=$(date +%s.%N)
  set +e
  "$scratch/release/fuzz-$t" "${args[@]}" "$corpus" "$work/seeds/$t" >"$log" 2>&1
  status=$?
  set -e
  seconds=$(echo "$(date +%s.%N) - $start" | bc)
  artefacts=$(( $(find "$crashes" -type f | wc -l) - before ))
  row=$(python3 - "$log" "$t" "$seconds" "$status" "$artefacts" <<'PY'
import re, sys
log, target, seconds, status, artefacts = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
text = open(log, errors="replace").read()
runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
runs = int(runs.group(1)) if runs else 0
last = [l for l in text.splitlines() if re.match(r"#\d+\s", l) and " cov: " in l]
def field(name):
    m = re.search(name + r":\s*(\S+)", last[-1]) if last else None
    return m.group(1) if m else "?"
clean = "yes" if status == 0 and artefacts == 0 else "NO (exit %d, %d artefact(s))" % (status, artefacts)
if "no interesting inputs were found" in text or field("cov") == "?":
    clean = "NO (no coverage: was it built with -sanitize=fuzzer?)"
print("%-10s %12s %9.0f %9.0f %7s %7s %12s  %s" % (target, "{:,}".format(runs), seconds, runs / seconds if seconds else 0,
      field("cov"), field("ft"), field("corp"), clean))
PY
)
  rows+=("$row")
  echo "$row"
  [[ "$row" == *" yes" ]] || failed=1
done
echo
printf '%-10s %12s %9s %9s %7s %7s %12s  %s\n' target executions seconds exec/s cov ft corpus clean
printf '%s\n' "${rows[@]}"
exit $failed
