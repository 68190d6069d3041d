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
