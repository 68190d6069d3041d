"""scripts/lib/testlog.py, the parsing behind scripts/test.sh's counts and its "== what failed" section, on sample
driver logs, pytest reports and swift test output. No root needed.

  pytest scripts/tests/test_testlog.py
"""
import os
import subprocess
import sys

import pytest

import testlog
from testbed import REPO

CLI = os.path.join(REPO, "scripts", "lib", "testlog.py")


def run_cli(*args):
    return subprocess.run([sys.executable, CLI, *map(str, args)], capture_output=True, timeout=30)


# --- a shell driver's log -----------------------------------------------------------------------------------------

DRIVER_LOG = "\n".join([
    "== replay",
    "  ✔ replay lists every packet",
    "      indented but under a pass: not repeated",
    "  ✘ replay writes the capture",
    *(f"      line {i}" for i in range(1, 15)),
    "    four spaces: not part of it",
    "      after the block: not repeated",
    "  ✘ check-config names the key",
    "  ✘ default-config round-trips",
    "      expected: packet",
    "      got: tun",
    "cli: 3 passed, 3 failed",
    "",
])


def test_driver_failures_repeat_each_failed_check_and_the_end_of_its_output():
    assert testlog.driver_failures("cli", DRIVER_LOG.encode()) == [line.encode() for line in [
        "cli: ✘ replay writes the capture",
        *(f"      line {i}" for i in range(3, 15)),  # the last 12 of 14
        "cli: ✘ check-config names the key",
        "cli: ✘ default-config round-trips",
        "      expected: packet",
        "      got: tun",
    ]]


def test_driver_failures_of_a_clean_log_and_a_log_without_a_final_newline():
    assert testlog.driver_failures("cli", b"  \xe2\x9c\x94 fine\ncli: 1 passed, 0 failed\n") == []
    assert testlog.driver_failures("ns", "  ✘ last\n      why".encode()) == ["ns: ✘ last".encode(), b"      why"]


def test_driver_failures_cli(tmp_path):
    log = tmp_path / "cli.log"
    log.write_text(DRIVER_LOG)
    r = run_cli("driver-failures", "cli", log)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[0] == "cli: ✘ replay writes the capture"
    assert r.stdout.decode().count("✘") == 3


# --- the count line -----------------------------------------------------------------------------------------------

def test_count_line_takes_the_last_line_of_the_prefix():
    text = ("cli: 1 passed, 0 failed\nnamespaces: 9 passed, 9 failed\n  cli: 7 passed, 7 failed\n"
            "cli: 12 passed, 2 failed (of 14)\n")
    assert testlog.count_line(text, "cli") == (12, 2)
    assert testlog.count_line("bench gate: 4 passed, 0 failed\n", "bench gate") == (4, 0)
    assert testlog.count_line("package: passed\n", "package") is None
    assert testlog.count_line("xcli: 1 passed, 0 failed\n", "cli") is None


def test_count_line_cli(tmp_path):
    log = tmp_path / "bench.log"
    log.write_text("bench gate: 3 passed, 1 failed\n")
    assert run_cli("count-line", log, "bench gate").stdout == b"3 1\n"
    assert run_cli("count-line", log, "cli").stdout == b""


# --- pytest's junit report ----------------------------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="test_x" name="test_ok"/>
<testcase classname="test_x" name="test_ok_too"/>
<testcase classname="test_x" name="test_fails"><failure message="assert 1 == 2&#10;second line">{}</failure></testcase>
<testcase classname="test_x" name="test_errors"><error>fixture broke</error></testcase>
<testcase classname="test_x" name="test_skipped">
<skipped type="pytest.skip" message="NOT RUN: needs root">skipped</skipped></testcase>
</testsuite></testsuites>
""".format("\n".join(f"trace {i}" for i in range(1, 21)))


@pytest.fixture
def junit(tmp_path):
    path = tmp_path / "suite.xml"
    path.write_text(JUNIT)
    return path


def test_junit_counts_a_skip_as_not_passed(junit, tmp_path):
    assert testlog.junit_counts(junit) == (2, 3)
    single = tmp_path / "single.xml"
    single.write_text('<testsuite tests="4" failures="0" errors="0" skipped="0"><testcase name="a"/></testsuite>')
    assert testlog.junit_counts(single) == (4, 0)


def test_junit_failures_name_each_test_and_the_end_of_its_text(junit):
    assert testlog.junit_failures("deploy", junit) == [
        "deploy: ✘ test_fails (failure): assert 1 == 2",
        *(f"      trace {i}" for i in range(9, 21)),
        "deploy: ✘ test_errors (error): ",
        "      fixture broke",
        "deploy: ✘ test_skipped (skipped): NOT RUN: needs root",
        "      skipped",
    ]


def test_junit_cli(junit, tmp_path):
    assert run_cli("junit-counts", junit).stdout == b"2 3\n"
    assert run_cli("junit-failures", "deploy", junit).stdout.decode().count("deploy: ✘") == 3
    broken = tmp_path / "broken.xml"
    broken.write_text("<testsuites")
    r = run_cli("junit-counts", broken)  # test.sh discards this and counts the suite as failed
    assert r.returncode != 0 and r.stdout == b""


# --- swift test ---------------------------------------------------------------------------------------------------

SWIFT_PASSED = """[3/12] Compiling NatTable FlowStore.swift
◇ Test run started.
✔ Test ipv4HeaderRoundTrips() passed after 0.001 seconds.
✔ Suite IPv4Tests passed after 0.002 seconds.
✔ Test run with 1234 tests in 98 suites passed after 12.5 seconds.
"""
SWIFT_FAILED = """◇ Test run started.
✔ Test ipv4HeaderRoundTrips() passed after 0.001 seconds.
✘ Test expiryRetiresAtMostEight() recorded an issue at NATTests.swift:40:9: Expectation failed: 9 == 8
✘ Test expiryRetiresAtMostEight() failed after 0.003 seconds with 1 issue.
✘ Test resyncHoldsAtMost2048Slots() failed after 0.010 seconds with 2 issues.
✘ Suite NATTests failed after 0.020 seconds with 3 issues.
✘ Test run with 1234 tests in 98 suites failed after 12.5 seconds with 3 issues.
"""


@pytest.mark.parametrize("text,status,counts", [
    pytest.param(SWIFT_PASSED, 0, (1234, 0), id="passed"),
    pytest.param(SWIFT_PASSED, 1, (1233, 1), id="passed-line-but-non-zero-exit"),
    pytest.param(SWIFT_FAILED, 1, (1232, 2), id="two-tests-failed"),
    pytest.param("error: build failed\n", 1, (0, 1), id="no-run-line"),
    pytest.param("✘ Test run with 1 test failed after 0.1 seconds with 1 issue.\n", 1, (0, 1), id="run-line-alone"),
])
def test_swift_test_counts(text, status, counts):
    assert testlog.swift_test_counts(text, status) == counts


def test_swift_test_failures_are_the_cross_lines():
    assert testlog.swift_test_failures(SWIFT_FAILED) == [
        "swift test: " + line for line in SWIFT_FAILED.splitlines() if line.startswith("✘ ")]
    assert len(testlog.swift_test_failures("✘ Test t() failed after 1 seconds.\n" * 50)) == 40
    assert testlog.swift_test_failures(SWIFT_PASSED) == []


def test_swift_test_cli(tmp_path):
    log = tmp_path / "swift-test.log"
    log.write_text(SWIFT_FAILED)
    assert run_cli("swift-test-counts", log, 1).stdout == b"1232 2\n"
    log.write_text(SWIFT_PASSED)
    assert run_cli("swift-test-counts", log).stdout == b"1234 0\n"
    assert run_cli("swift-test-failures", log).stdout == b""


def test_cli_usage():
    r = run_cli("no-such-command")
    assert r.returncode != 0 and b"junit-counts FILE" in r.stderr
    assert run_cli("count-line", "only-one-argument").returncode != 0
