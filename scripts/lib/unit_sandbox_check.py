"""Checks what a process did (an `strace -f -o LOG` of it) against a systemd unit's system call and socket filters.

    python3 scripts/lib/unit_sandbox_check.py UNIT-FILE STRACE-LOG EXECUTABLE

Only what happened from the first successful execve of EXECUTABLE on is counted (what ran before it, such as
setpriv dropping privileges, is systemd's part under the unit), in that process and in every process it started
(health-check commands and route hooks, which the unit's filters bind too). The unit's SystemCallFilter= lines are read as systemd
reads them: the first is an allow list, a later one starting with ~ takes its entries away; @groups are expanded
with `systemd-analyze syscall-filter`, as this machine's systemd defines them. Every socket(2) and socketpair(2)
family must be in RestrictAddressFamilies=. Prints what was used and exits 1 naming anything the unit would refuse.
"""
import re
import subprocess
import sys


def unit_values(unit_text, key):
    return [line.split("=", 1)[1].strip() for line in unit_text.splitlines() if line.startswith(key + "=")]


group_cache = {}


def expand(name):
    """A system call, or every system call of an @group (recursively), as this machine's systemd lists them."""
    if not name.startswith("@"):
        return {name}
    if name not in group_cache:
        listing = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True, capture_output=True,
                                 text=True).stdout
        calls = set()
        for line in listing.splitlines():
            entry = line.strip()
            if line.startswith("    ") and entry and not entry.startswith("#"):
                calls |= expand(entry)
        group_cache[name] = calls
    return group_cache[name]


def allowed_calls(filters):
    allowed = None
    for value in filters:
        deny = value.startswith("~")
        names = set().union(*(expand(n) for n in value.lstrip("~").split()))
        if allowed is None:
            if deny:
                sys.exit("unit_sandbox_check: a deny-list SystemCallFilter first is not handled here")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


CALL = re.compile(r"^(\d+) +([a-z0-9_]+)\(")
EXEC = re.compile(r'^(\d+) +execve\("([^"]+)".*= 0$')
CLONE = re.compile(r"^(\d+) +(?:<\.\.\. )?(?:clone3?|fork|vfork)\b.*= (\d+)$")
SOCKET = re.compile(r"^(\d+) +(?:socket|socketpair)\((AF_[A-Z0-9]+|\d+)")


def main():
    unit_file, log_file, executable = sys.argv[1:4]
    unit = open(unit_file).read()
    allowed = allowed_calls(unit_values(unit, "SystemCallFilter"))
    families = set(" ".join(unit_values(unit, "RestrictAddressFamilies")).split())
    lines = open(log_file, errors="replace").read().splitlines()
    # First the process tree: a child's first lines can come before its parent's clone returns in the log.
    started = {}         # pid -> index of the line from which it counts
    children = {}        # pid -> [(line index of the clone, child pid)]
    for index, line in enumerate(lines):
        exec_match = EXEC.match(line)
        if exec_match and exec_match.group(2) == executable and not started:
            started[exec_match.group(1)] = index
        clone = CLONE.match(line)
        if clone:
            children.setdefault(clone.group(1), []).append((index, clone.group(2)))
    pending = list(started)
    while pending:
        parent = pending.pop()
        for index, child in children.get(parent, []):
            if index >= started[parent] and child not in started:
                started[child] = 0
                pending.append(child)
    counted = started
    program = {}         # pid -> the program it last executed, for the report
    used = {}
    first_use = {}
    used_families = set()
    for index, line in enumerate(lines):
        exec_match = EXEC.match(line)
        if exec_match:
            program[exec_match.group(1)] = exec_match.group(2)
        call = CALL.match(line)
        if not call or call.group(1) not in started or index < started[call.group(1)]:
            continue
        used[call.group(2)] = used.get(call.group(2), 0) + 1
        first_use.setdefault(call.group(2), (program.get(call.group(1), f"a thread of {executable}"), line.strip()))
        socket = SOCKET.match(line)
        if socket:
            used_families.add(socket.group(2))
    if not counted:
        sys.exit(f"unit_sandbox_check: no successful execve of {executable} in {log_file}")
    print(f"{len(counted)} process(es), {len(used)} distinct system calls, families {' '.join(sorted(used_families))}")
    refused = sorted(name for name in used if name not in allowed)
    refused_families = sorted(used_families - families)
    for name in refused:
        print(f"SystemCallFilter would refuse {name} (called {used[name]} times; first by {first_use[name][0]}: "
              f"{first_use[name][1][:160]})")
    for family in refused_families:
        print(f"RestrictAddressFamilies would refuse {family}")
    sys.exit(1 if refused or refused_families else 0)


if __name__ == "__main__":
    main()
