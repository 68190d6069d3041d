"""What scripts/test.sh reads from its suites' output: counts and failures, from a shell driver's log, a pytest
--junitxml report or swift test's output. Standard library only (test.sh runs it with the system's python3).

  python3 scripts/lib/testlog.py count-line FILE PREFIX          "N M" from the last "PREFIX: N passed, M failed"
  python3 scripts/lib/testlog.py driver-failures SUITE LOG       a shell driver's failed checks
  python3 scripts/lib/testlog.py junit-counts FILE               "PASSED NOT_PASSED" from a pytest report
  python3 scripts/lib/testlog.py junit-failures SUITE FILE       a pytest report's failed, errored, skipped tests
  python3 scripts/lib/testlog.py swift-test-counts LOG [STATUS]  "PASSED FAILED" of swift test (STATUS: its exit)
  python3 scripts/lib/testlog.py swift-test-failures LOG         swift test's "✘ " lines, at most 40

Each prints nothing where there is nothing to report (count-line with no such line, for one).
"""
import re
import sys
import xml.etree.ElementTree as ET

# The lines of what a failed check printed that are repeated under it at the end of the run.
TAIL_LINES = 12


def count_line(text, prefix):
    """(N, M) from the last line "PREFIX: N passed, M failed..." of `text`, or None."""
    pattern = re.compile(rf"^{re.escape(prefix)}: ([0-9]+) passed, ([0-9]+) failed")
    found = None
    for line in text.split("\n"):
        m = pattern.match(line)
        if m:
            found = (int(m.group(1)), int(m.group(2)))
    return found


def driver_failures(suite, data):
    """A shell driver's failed checks, from its log as bytes: each "  ✘ name" line as "SUITE: ✘ name", then the last
    lines of the output indented under it (six spaces), kept as they are."""
    out = []
    held = []
    under_failure = False

    def flush():
        nonlocal held, under_failure
        out.extend(held[-TAIL_LINES:])
        held = []
        under_failure = False

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line.startswith("  ✘ ".encode()):
            flush()
            out.append(suite.encode() + b": " + line[2:])
            under_failure = True
        elif under_failure and line.startswith(b"      "):
            held.append(line)
        else:
            flush()
    flush()
    return out


def _testsuites(path):
    root = ET.parse(path).getroot()
    return [root] if root.tag == "testsuite" else root.findall("testsuite")


def junit_counts(path):
    """(passed, not passed) from a pytest --junitxml report. A skip counts as not passed: as root everything must
    run, and a skipped test proves nothing."""
    n = {k: sum(int(s.get(k, 0)) for s in _testsuites(path)) for k in ("tests", "failures", "errors", "skipped")}
    not_passed = n["failures"] + n["errors"] + n["skipped"]
    return n["tests"] - not_passed, not_passed


def junit_failures(suite, path):
    """Each failed, errored or skipped test of a pytest report: "SUITE: ✘ name (kind): first line of the message",
    then the last lines of its text, indented."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for kind in ("failure", "error", "skipped"):
            for e in case.findall(kind):
                message = e.get("message") or ""
                first = message.splitlines()[0][:300] if message else ""
                out.append(f"{suite}: ✘ {case.get('name')} ({kind}): {first}")
                out.extend("      " + line for line in (e.text or "").rstrip().splitlines()[-TAIL_LINES:])
    return out


# swift-testing's last line: "✔ Test run with N tests in M suites passed ..." or
# "✘ Test run with N tests ... failed ...".
RUN_LINE = re.compile(r"^(✔|✘) Test run with ([0-9]+) tests?( in [0-9]+ suites?)? (passed|failed)")
RUN_PASSED = re.compile(r"^✔ Test run with [0-9]+ tests? in [0-9]+ suites? passed")
TEST_FAILED = re.compile(r"^✘ Test .* failed after")


def swift_test_counts(text, status=0):
    """(passed, failed) of a swift test run from its output and exit status. It passed if it exited 0 and printed
    the passing run line: all N tests passed. Otherwise each "✘ Test ... failed after" line (the run line aside) is
    a failure, at least one, and the rest of the N passed."""
    lines = text.split("\n")
    totals = [int(m.group(2)) for m in map(RUN_LINE.match, lines) if m]
    total = totals[-1] if totals else 0
    if status == 0 and any(RUN_PASSED.match(line) for line in lines):
        return total, 0
    failed = sum(1 for line in lines if TEST_FAILED.match(line) and not line.startswith("✘ Test run with"))
    failed = max(failed, 1)
    return (total - failed if total > failed else 0), failed


def swift_test_failures(text, most=40):
    """swift test's "✘ " lines (each failed test and issue, and the run line), at most `most`."""
    return ["swift test: " + line for line in text.split("\n") if line.startswith("✘ ")][:most]


def _read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def main(argv):
    usage = __doc__.split("\n\n")[1]
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    if not argv:
        sys.exit(f"usage:\n{usage}")
    command, args = argv[0], argv[1:]
    if command == "count-line" and len(args) == 2:
        found = count_line(_read_text(args[0]), args[1])
        if found:
            print(*found)
    elif command == "driver-failures" and len(args) == 2:
        with open(args[1], "rb") as f:
            lines = driver_failures(args[0], f.read())
        sys.stdout.buffer.write(b"".join(line + b"\n" for line in lines))
    elif command == "junit-counts" and len(args) == 1:
        print(*junit_counts(args[0]))
    elif command == "junit-failures" and len(args) == 2:
        for line in junit_failures(args[0], args[1]):
            print(line)
    elif command == "swift-test-counts" and len(args) in (1, 2):
        print(*swift_test_counts(_read_text(args[0]), int(args[1]) if len(args) == 2 else 0))
    elif command == "swift-test-failures" and len(args) == 1:
        for line in swift_test_failures(_read_text(args[0])):
            print(line)
    else:
        sys.exit(f"usage:\n{usage}")


if __name__ == "__main__":
    main(sys.argv[1:])
