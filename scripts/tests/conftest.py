"""pytest's setup for the failover suites: where the tunnat binary is, who may run what, the shared fixtures.

  --tunnat PATH            the binary under test (else $TUNNAT, else .build/debug/tunnat in the repository)
  --tunnat-previous PATH   the previous release's, for the upgrade (else $TUNNAT_PREVIOUS, else built from git)

A test that needs root asks for the `root` fixture; without root it is skipped with the reason, and the run ends
with a line saying how many were not run, so a skip is never mistaken for a pass.
"""
import os
import sys

import pytest

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
sys.path.insert(0, LIB)

from testbed import REPO, Processes  # noqa: E402

NOT_ROOT = "NOT RUN: needs root (network namespaces, veth pairs, TUN devices); run as root"


def pytest_addoption(parser):
    parser.addoption("--tunnat", default=os.environ.get("TUNNAT") or os.path.join(REPO, ".build", "debug", "tunnat"),
                     help="the tunnat binary under test (default: $TUNNAT, else .build/debug/tunnat)")
    parser.addoption("--tunnat-previous", default=os.environ.get("TUNNAT_PREVIOUS"),
                     help="a build of the previous release, for test_lifecycle.py (default: $TUNNAT_PREVIOUS, else "
                          "built from git into .build-previous/)")


@pytest.fixture(scope="session")
def tunnat(pytestconfig):
    path = os.path.abspath(pytestconfig.getoption("--tunnat"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (swift build, or pass --tunnat PATH / TUNNAT=PATH)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def root():
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)


@pytest.fixture(scope="module")
def module_procs():
    """Processes started for a module's fixtures, ended when the module is done."""
    procs = Processes()
    yield procs
    procs.stop(kill=True)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} test(s) NOT RUN: skipped, each for the reason on its SKIPPED "
                                        "line", red=True)
