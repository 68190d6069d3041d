"""The figures docs/architecture.md names (and the documents that repeat them), against the code that sets them.

Each figure is read from the source text (a constant, or the size a doc comment states, itself checked against the
struct's layout) or from the binary (`tunnat --help`, `tunnat default-config`), and each document's figure with a
pattern that must match exactly once: a rewording that drops a figure fails here, to be given a new pattern, rather
than leaving the figure unchecked. No root needed.

  pytest scripts/tests/test_docs_figures.py --tunnat .build/debug/tunnat
"""
import os
import re
import subprocess

import pytest

from testbed import REPO

SOURCES = os.path.join(REPO, "Sources")


def read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def doc(name):
    """A document with its line breaks folded into spaces, so that a figure's pattern does not depend on the wrap."""
    return " ".join(read("docs", name).split())


def number(text):
    return int(text.replace(",", "").replace("_", ""))


def one(pattern, text, where):
    """The groups of the one match of `pattern` in `text`."""
    found = re.findall(pattern, text, re.M)
    assert len(found) == 1, f"{where}: expected one match of {pattern!r}, found {len(found)}: {found}"
    return found[0]


# --- sizes: the doc comments of FlowStore's slabs, and the layout that stands behind them ---------------------------

PRIMITIVES = {"UInt8": 1, "Int8": 1, "Bool": 1, "UInt16": 2, "Int16": 2, "UInt32": 4, "Int32": 4, "UInt64": 8,
              "Int64": 8, "Int": 8, "UInt": 8, "Double": 8}
NATTABLE = "".join(read("Sources", "NatTable", f) for f in sorted(os.listdir(os.path.join(SOURCES, "NatTable"))))


def stated_size(struct):
    """The size FlowStore.swift's doc comment states for `struct`: "/// ... N bytes." on the line above it."""
    return int(one(rf"^/// [^\n]*?\b(\d+) bytes\.\n(?:@\w+ )*struct {struct} \{{",
                   read("Sources", "NatTable", "FlowStore.swift"),
                   f"the doc comment of {struct} in Sources/NatTable/FlowStore.swift"))


def stored_properties(struct):
    """(name, type) of each stored property of a NatTable struct, in declaration order."""
    start = re.search(rf"^(?:@\w+ )*struct {struct}\b[^{{\n]*\{{\n", NATTABLE, re.M)
    assert start, f"struct {struct} is not in Sources/NatTable"
    depth, props = 1, []
    for line in NATTABLE[start.end():].split("\n"):
        if depth == 1:
            declaration = line.split("//")[0].rstrip()
            m = re.match(r"^\s*(?:(?:@\w+|public|internal|private|fileprivate)(?:\(set\))? )*"
                         r"var (\w+): (\w+)(?: = [^{]*)?$", declaration)
            if m:
                props.append(m.groups())
        depth += line.count("{") - line.count("}")
        if depth == 0:
            return props
    raise AssertionError(f"struct {struct}: no closing brace")


def layout(type_name):
    """(size, alignment, stride) of a type as Swift lays out a struct: fields in declaration order, each at the next
    multiple of its alignment; the stride rounds the size up to the alignment."""
    if type_name in PRIMITIVES:
        n = PRIMITIVES[type_name]
        return n, n, n
    size, align = 0, 1
    for _, field in stored_properties(type_name):
        s, a, _ = layout(field)
        size = (size + a - 1) // a * a + s
        align = max(align, a)
    return size, align, max((size + align - 1) // align * align, 1)


@pytest.mark.parametrize("struct", ["Mapping", "Flow"])
def test_flowstore_doc_comment_states_the_layout(struct):
    assert stated_size(struct) == layout(struct)[2], f"Sources/NatTable/FlowStore.swift says {struct} is " \
        f"{stated_size(struct)} bytes; its fields take {layout(struct)[2]} (stride)"


@pytest.mark.parametrize("name,pattern", [
    pytest.param("architecture.md", r"\(mapping (\d+) bytes, flow (\d+) bytes\)", id="architecture.md"),
    pytest.param("nat-behaviour.md", r"A mapping takes (\d+) bytes and a flow (\d+)\b", id="nat-behaviour.md"),
])
def test_bytes_per_mapping_and_flow(name, pattern):
    mapping, flow = one(pattern, doc(name), f"docs/{name}")
    assert (int(mapping), int(flow)) == (stated_size("Mapping"), stated_size("Flow")), \
        f"docs/{name}: mapping {mapping} bytes, flow {flow} bytes; Sources/NatTable/FlowStore.swift: " \
        f"{stated_size('Mapping')} and {stated_size('Flow')}"


# --- constants ----------------------------------------------------------------------------------------------------

# (what, the source file and the constant's pattern, [(document, the figure's pattern)])
CONSTANTS = [
    ("slots per resync hold", ("NatTable/ChangeFeed.swift", r"^\s*public static let snapshotSlots = ([\d_]+)$"), [
        ("architecture.md", r"read under the same lock hold: at most ([\d,]+) slots"),
        ("high-availability.md", r"\(([\d,]+) slots per hold of the workers' lock"),
        ("replication-wire-format.md", r"walks the table's slots, ([\d,]+) per hold of the workers' lock"),
    ]),
    ("flows retired per packet", ("NatTable/NAT.swift", r"^\s*public static let expiryBudgetPerPacket = ([\d_]+)$"), [
        ("architecture.md", r"at most ([\d,]+) flows are retired per packet"),
    ]),
    ("frames per batch under one lock",
     ("TunIO/Worker.swift", r"^\s*public static var batchSize: Int \{ ([\d_]+) \}$"), [
        ("architecture.md", r"One lock over the table per batch of up to ([\d,]+) frames"),
    ]),
    ("bytes per change-feed record", ("NatTable/ChangeFeed.swift", r"^\s*public static let encodedSize = ([\d_]+)$"), [
        ("architecture.md", r"removals as ([\d,]+)-byte records"),
    ]),
]


@pytest.mark.parametrize("what,source,name,pattern",
                         [pytest.param(what, source, name, pattern, id=f"{what.replace(' ', '-')}:{name}")
                          for what, source, docs in CONSTANTS for name, pattern in docs])
def test_constant(what, source, name, pattern):
    path, source_pattern = source
    in_code = number(one(source_pattern, read("Sources", path), f"Sources/{path}"))
    in_doc = number(one(pattern, doc(name), f"docs/{name}"))
    assert in_doc == in_code, f"{what}: docs/{name} says {in_doc:,}, Sources/{path} {in_code:,}"


# --- the default output -------------------------------------------------------------------------------------------

def documented_default_outputs():
    """Every default output docs/architecture.md names: "`tun.output: X`, the default" and "X output as the default"."""
    text = doc("architecture.md")
    found = re.findall(r"`tun\.output: (\w+)`, the default", text) + \
        re.findall(r"\b(\w+) output (?:with offloads )?as the default", text)
    assert found, "docs/architecture.md names no default output (`tun.output: X`, the default; X output as the default)"
    return found


def test_default_output_in_source():
    in_code = one(r"^\s*public var output = Output\.(\w+)$", read("Sources", "TunnatKit", "Config", "TunSection.swift"),
                  "Sources/TunnatKit/Config/TunSection.swift")
    assert set(documented_default_outputs()) == {in_code}, \
        f"docs/architecture.md: default output {documented_default_outputs()}; TunSection.swift: {in_code}"


def test_default_output_of_the_binary(tunnat):
    yaml = subprocess.run([tunnat, "default-config"], capture_output=True, text=True, check=True, timeout=30).stdout
    tun = one(r"^tun:\n((?:(?:[ #].*)?\n)*)", yaml, "tunnat default-config: the tun section")
    in_binary = one(r"^  output: (\w+)\s*$", tun, "tunnat default-config: tun.output")
    assert set(documented_default_outputs()) == {in_binary}, \
        f"docs/architecture.md: default output {documented_default_outputs()}; tunnat default-config: {in_binary}"


# --- the subcommands ----------------------------------------------------------------------------------------------

def documented_subcommands():
    row = one(r"^\| \*\*tunnat\*\* \|[^|\n]*\| the executable: ([^|\n]*)\|", read("docs", "architecture.md"),
              "docs/architecture.md: the tunnat row of the module table")
    return sorted(re.findall(r"`([a-z][a-z0-9-]*)`", row))


def test_subcommands_in_source():
    text = read("Sources", "tunnat", "Tunnat.swift")
    types = re.findall(r"(\w+)\.self", one(r"commandName: \"tunnat\",[^\]]*?subcommands: \[([^\]]*)\]", text,
                                           "Sources/tunnat/Tunnat.swift: the subcommands of tunnat"))
    names = sorted(one(rf"struct {t}\b[^{{]*\{{\s*static let configuration = CommandConfiguration\("
                       rf"\s*commandName: \"([^\"]+)\"",
                       text, f"Sources/tunnat/Tunnat.swift: the commandName of {t}") for t in types)
    assert documented_subcommands() == names, \
        f"docs/architecture.md lists {documented_subcommands()}; Sources/tunnat/Tunnat.swift has {names}"


def test_subcommands_of_the_binary(tunnat):
    out = subprocess.run([tunnat, "--help"], capture_output=True, text=True, check=True, timeout=30).stdout
    section = one(r"^SUBCOMMANDS:\n((?:[ ].*\n)*)", out + "\n", "tunnat --help: its SUBCOMMANDS section")
    # "  name   abstract" (or the name alone, the abstract on the next line, indented further); "(default)" may follow.
    names = sorted(re.findall(r"^  ([a-z][a-z0-9-]*)(?: \(default\))?(?:  |$)", section, re.M))
    assert names, f"tunnat --help lists no subcommands:\n{out}"
    assert documented_subcommands() == names, f"docs/architecture.md lists {documented_subcommands()}; " \
        f"tunnat --help: {names}"
