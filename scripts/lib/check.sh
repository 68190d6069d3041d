# The namespace and package test drivers' check: sourced, it gives `check NAME COMMAND...`, which runs COMMAND,
# counts it in $passed or $failed, and shows the last $CHECK_TAIL (20) lines of its output only when it fails.
passed=0
failed=0
check() {
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf '  ✔ %s\n' "$name"
  else
    failed=$((failed + 1))
    printf '  ✘ %s\n' "$name"
    printf '%s\n' "$out" | sed 's/^/      /' | tail -"${CHECK_TAIL:-20}"
  fi
}

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds or SECONDS (whole seconds) have passed on
# the clock, then once more at the deadline; its status. Every wait of the drivers is for a condition, never a time.
wait_until() {
  local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
  shift
  until "$@"; do
    [ "${EPOCHREALTIME/./}" -lt "$end" ] || { "$@"; return; }
    sleep 0.1
  done
}

# listening NAMESPACE t|u PORT: something in NAMESPACE listens on TCP (t) or UDP (u) PORT.
listening() { ip netns exec "$1" ss -Hl"$2"n "sport = :$3" | grep -q .; }
