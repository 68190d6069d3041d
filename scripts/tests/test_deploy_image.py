"""The AMI recipe, deploy/packer/: what the image is built from and what it is left with, read from the recipe
itself: the HCL2 template parsed with python-hcl2, the cloud-init drop-in with PyYAML, the provisioning script as
text (and through `sh -n`, and shellcheck where it is installed). Where packer is installed (on PATH or in .venv/bin)
it checks the template too: `packer fmt -check` (its own HCL2 parser), and from packer 1.7 on (plugins, the packer
block's required_plugins) `packer validate -syntax-only`; without packer, python-hcl2's parse is the syntax check.

  .venv/bin/python -m pytest scripts/tests/test_deploy_image.py [-k NAME]

Needs pytest, python-hcl2 and PyYAML (and boto3, which conftest.py's testbed import needs). No root, no network, no
AWS account, no tunnat binary (--tunnat is accepted and not used). Building an image needs an AWS account and is
not tested here (docs/aws.md, "The image").
"""
import fnmatch
import json
import os
import re
import shutil
import subprocess

import hcl2
import pytest
import yaml

from testbed import REPO

PACKER_DIR = os.path.join(REPO, "deploy", "packer")
TEMPLATE = os.path.join(PACKER_DIR, "tunnat.pkr.hcl")
VARIABLES = os.path.join(PACKER_DIR, "variables.pkr.hcl")
PROVISION = os.path.join(PACKER_DIR, "files", "provision.sh")
DROPIN = os.path.join(PACKER_DIR, "files", "99-tunnat-imds-network.cfg")
DEBIAN_OWNER = "136693071363"  # the Debian project's AWS account (deploy/packer/tunnat.pkr.hcl says where from)

# AWS's rule for an AMI name (CreateImage, Name): 3 to 128 characters of these.
AMI_NAME = re.compile(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$")


def unquote(value):
    """python-hcl2 keeps a string literal's quotes from version 6 on ('"admin"') and drops them before: one form."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def plain(tree):
    """The parse without python-hcl2's bookkeeping keys (__comments__, __is_block__, ...), every literal unquoted."""
    if isinstance(tree, dict):
        return {unquote(k): plain(v) for k, v in tree.items() if not k.startswith("__")}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return unquote(tree)


def load(path):
    with open(path) as f:
        return plain(hcl2.load(f))


@pytest.fixture(scope="module")
def template():
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def variables():
    return {name: body for block in load(VARIABLES)["variable"] for name, body in block.items()}


@pytest.fixture(scope="module")
def source(template):
    """source "amazon-ebs" "debian12" { ... }"""
    sources = [s["amazon-ebs"]["debian12"] for s in template["source"] if "debian12" in s.get("amazon-ebs", {})]
    assert len(sources) == 1, f"one amazon-ebs source named debian12, found {template['source']}"
    return sources[0]


@pytest.fixture(scope="module")
def build(template):
    assert len(template["build"]) == 1, "one build block"
    build = template["build"][0]
    assert build["sources"] == ["source.amazon-ebs.debian12"]
    return build


@pytest.fixture(scope="module")
def provisioners(build):
    """[(type, body)] in the order packer runs them."""
    return [(kind, body) for p in build["provisioner"] for kind, body in p.items()]


@pytest.fixture(scope="module")
def script():
    """provision.sh's commands, comments and blank lines left out, continuation lines joined, runs of blanks one."""
    with open(PROVISION) as f:
        text = f.read().replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def line_index(lines, pattern, what):
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"provision.sh has no line matching {pattern!r} ({what})"
    return found[0]


def string_literals(expression):
    """The string literals of an HCL expression, decoded, in order (HCL's escapes are JSON's). The regular
    expressions in this recipe use nothing in which RE2 (packer's) and Python's differ."""
    return [json.loads('"' + m + '"') for m in re.findall(r'"((?:[^"\\]|\\.)*)"', expression)]


def deb_path_pattern(variables):
    (validation,) = variables["deb_path"]["validation"]
    condition = validation["condition"]
    assert re.fullmatch(r'\$\{can\(regex\("(?:[^"\\]|\\.)*", var\.deb_path\)\)\}', condition), condition
    return string_literals(condition)[0]


def version_of(template, deb):
    """locals.tunnat_version as packer computes it: regex_replace(regex(EXTRACT, var.deb_path)[0], UNSAFE, "-")."""
    expression = template["locals"][0]["tunnat_version"]
    shape = r'\$\{regex_replace\(regex\("(?:[^"\\]|\\.)*", var\.deb_path\)\[0\], "(?:[^"\\]|\\.)*", "-"\)\}'
    assert re.fullmatch(shape, expression), expression
    extract, unsafe, replacement = string_literals(expression)
    return re.sub(unsafe, replacement, re.search(extract, deb).group(1))


def packer_binary():
    venv = os.path.join(REPO, ".venv", "bin", "packer")
    return venv if os.access(venv, os.X_OK) else shutil.which("packer")


def changelog_version():
    with open(os.path.join(REPO, "packaging", "changelog")) as f:
        m = re.match(r"tunnat \(([^)]+)\)", f.readline())
    assert m, "packaging/changelog's first line names no version"
    return m.group(1)


# --- the template parses ------------------------------------------------------------------------------------------

def test_recipe_parses(template, variables):
    """python-hcl2 reads both files (the fixtures); with packer installed, packer's own parser agrees."""
    assert {"packer", "locals", "source", "build"} <= set(template), f"top-level blocks: {sorted(template)}"
    assert set(variables) == {"deb_path", "region", "instance_type", "ami_name_prefix"}
    packer = packer_binary()
    if packer is None:
        print("packer is not installed: the syntax check was python-hcl2's parse")
        return
    env = dict(os.environ, CHECKPOINT_DISABLE="1")
    fmt = subprocess.run([packer, "fmt", "-check", "-diff", PACKER_DIR], capture_output=True, text=True, env=env)
    assert fmt.returncode == 0, f"packer fmt -check: not in canonical form or not parsed:\n{fmt.stdout}{fmt.stderr}"
    version = subprocess.run([packer, "version"], capture_output=True, text=True, env=env).stdout
    m = re.search(r"v?(\d+)\.(\d+)\.", version)
    assert m, f"packer version printed {version!r}"
    if (int(m.group(1)), int(m.group(2))) < (1, 7):
        print(f"{version.strip()}: too old for required_plugins, so no packer validate; fmt -check passed")
        return
    sample = f"out/tunnat_{changelog_version()}_amd64.deb"
    validate = subprocess.run([packer, "validate", "-syntax-only", "-var", f"deb_path={sample}", PACKER_DIR],
                              capture_output=True, text=True, env=env, cwd=REPO)
    assert validate.returncode == 0, f"packer validate -syntax-only:\n{validate.stdout}{validate.stderr}"


def test_amazon_plugin_required(template):
    plugins = template["packer"][0]["required_plugins"][0]
    assert plugins["amazon"]["source"] == "github.com/hashicorp/amazon"
    assert plugins["amazon"]["version"].startswith(">= 1.")


# --- what it is built from ----------------------------------------------------------------------------------------

def locals_for(template, deb):
    """The recipe's arch, ec2_arch and builder locals as packer computes them for `deb` (and no instance_type)."""
    l = template["locals"][0]
    assert l["arch"] == '${regex("_(amd64|arm64)\\\\.deb$", var.deb_path)[0]}', l["arch"]
    arch = re.search(r"_(amd64|arm64)\.deb$", deb).group(1)
    assert l["ec2_arch"] == '${local.arch == "arm64" ? "arm64" : "x86_64"}', l["ec2_arch"]
    assert l["builder"] == '${var.instance_type != "" ? var.instance_type : (local.arch == "arm64" ? "t4g.small" : "t3.small")}', l["builder"]
    return {"arch": arch, "ec2_arch": "arm64" if arch == "arm64" else "x86_64",
            "builder": "t4g.small" if arch == "arm64" else "t3.small"}


def test_source_ami_is_the_newest_official_debian12_of_the_packages_architecture(source, template):
    (f,) = source["source_ami_filter"]
    assert f["owners"] == [DEBIAN_OWNER], "only the Debian project's own account"
    assert f["most_recent"] is True
    assert f["filters"] == {"name": "debian-12-${local.arch}-*", "architecture": "${local.ec2_arch}",
                            "virtualization-type": "hvm", "root-device-type": "ebs"}
    assert source["instance_type"] == "${local.builder}"
    assert source["ssh_username"] == "admin", "Debian's AMIs log in as admin"
    assert locals_for(template, "out/tunnat_1.0-1_arm64.deb") == {"arch": "arm64", "ec2_arch": "arm64",
                                                                  "builder": "t4g.small"}
    assert locals_for(template, "out/tunnat_1.0-1_amd64.deb") == {"arch": "amd64", "ec2_arch": "x86_64",
                                                                  "builder": "t3.small"}


@pytest.mark.parametrize("arch, name, picked", [
    ("amd64", "debian-12-amd64-20231013-1532", True),
    ("amd64", "debian-12-amd64-20260915-2234", True),
    ("amd64", "debian-12-arm64-20231013-1532", False),
    ("amd64", "debian-12-backports-amd64-20231013-1532", False),
    ("amd64", "debian-11-amd64-20231013-1532", False),
    ("amd64", "debian-13-amd64-20250814-2204", False),
    ("arm64", "debian-12-arm64-20231013-1532", True),
    ("arm64", "debian-12-amd64-20231013-1532", False),
    ("arm64", "debian-12-backports-arm64-20231013-1532", False),
])
def test_name_filter_picks_bookworm_of_the_architecture_only(source, arch, name, picked):
    pattern = source["source_ami_filter"][0]["filters"]["name"].replace("${local.arch}", arch)
    assert fnmatch.fnmatchcase(name, pattern) is picked


def test_imdsv2_required(source):
    """On the building instance (metadata_options) and, by default, on every instance of the AMI (imds_support)."""
    (options,) = source["metadata_options"]
    assert options == {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}
    assert source["imds_support"] == "v2.0"


# --- the package: which file, which name --------------------------------------------------------------------------

@pytest.mark.parametrize("path, accepted", [
    ("out/tunnat_0.15.0-1_amd64.deb", True),
    ("/home/me/tunnat/out/tunnat_1.2.3-2_amd64.deb", True),
    ("out/tunnat_0.15.0-1_arm64.deb", True),
    ("out/tunnat_0.15.0-1_i386.deb", False),
    ("out/tunnat_*_amd64.deb", True),  # a glob the shell did not expand is caught by the file provisioner instead
    ("out/tunnat.deb", False),
    ("out/tunnat_0.15.0-1_amd64.deb.sha256", False),
    ("", False),
])
def test_deb_path_must_name_an_amd64_or_arm64_tunnat_package(variables, path, accepted):
    assert "default" not in variables["deb_path"], "no default: the .deb to bake in is named on every build"
    assert bool(re.search(deb_path_pattern(variables), path)) is accepted


def test_package_deb_sh_makes_a_name_the_recipe_accepts(variables):
    with open(os.path.join(REPO, "scripts", "package-deb.sh")) as f:
        assert "deb=$output/tunnat_${debian_version}_${arch}.deb" in f.read()
    assert re.search(deb_path_pattern(variables), f"out/tunnat_{changelog_version()}_amd64.deb")


@pytest.mark.parametrize("deb, version", [
    ("out/tunnat_0.15.0-1_amd64.deb", "0.15.0-1"),
    ("out/tunnat_0.15.0-1_arm64.deb", "0.15.0-1"),
    ("/tmp/x/tunnat_1.0.0~rc1+git2-1_amd64.deb", "1.0.0-rc1-git2-1"),
])
def test_ami_name_carries_the_package_version(template, source, deb, version):
    got = version_of(template, deb)
    assert got == version
    assert source["ami_name"] == "${var.ami_name_prefix}-${local.tunnat_version}-${local.built_at}"
    assert AMI_NAME.match(f"tunnat-{got}-20261122-101500")


def test_changelog_version_makes_a_valid_ami_name(template):
    version = version_of(template, f"out/tunnat_{changelog_version()}_amd64.deb")
    assert AMI_NAME.match(f"tunnat-{version}-20261122-101500"), version


# --- what the build does on the instance --------------------------------------------------------------------------

def test_uploads_the_package_and_the_dropin_then_provisions_as_root(provisioners):
    kinds = [kind for kind, _ in provisioners]
    assert kinds == ["file", "file", "shell"], "uploads first, then the script that uses them"
    uploads = {body["destination"]: body["source"] for kind, body in provisioners if kind == "file"}
    assert uploads == {"/tmp/tunnat.deb": "${var.deb_path}",
                       "/tmp/99-tunnat-imds-network.cfg": "${path.root}/files/99-tunnat-imds-network.cfg"}
    shell = provisioners[-1][1]
    assert shell["script"] == "${path.root}/files/provision.sh"
    assert shell["execute_command"].startswith("chmod +x {{ .Path }}; sudo ")
    assert "inline" not in shell


def test_package_installed_with_apt_get_resolving_dependencies(script):
    assert "deb=/tmp/tunnat.deb" in script
    update = line_index(script, r"^apt_get update$", "apt-get update before installing")
    install = line_index(script, r'^apt_get install -y --no-install-recommends "\$deb" nftables$',
                         "apt-get install of the .deb and nftables (the metadata guard's)")
    assert update < install
    assert any(re.match(r"^apt_get\(\) \{ apt-get .*\"\$@\"; \}$", line) for line in script), "apt_get is apt-get"
    assert not any(re.search(r"\bdpkg (-i|--install)\b", line) for line in script), "dpkg -i resolves nothing"
    assert line_index(script, r"^tunnat --version$", "the installed binary runs") > install


def test_unit_left_disabled_and_stopped(template, script):
    """The build fails unless the package left tunnat.service disabled and not running, and nothing in the recipe
    enables, starts or unmasks it: the instance's user data does, after writing the configuration."""
    install = line_index(script, r"^apt_get install ", "the install")
    state = line_index(script, r"^state=\$\(systemctl is-enabled tunnat\.service", "is-enabled asked")
    check = line_index(script, r'^\[ "\$state" = disabled \] \|\| fail ', "anything but disabled fails the build")
    active = line_index(script, r"^if systemctl is-active --quiet tunnat\.service; then$", "is-active asked")
    assert script[active + 1].startswith("fail "), "running fails the build"
    assert install < state < check and install < active
    touching = re.compile(r"systemctl\s+(\S+\s+)*(enable|start|restart|reenable|unmask|preset)\b|deb-systemd-invoke")
    guard = "tunnat-imds-guard.service"
    assert not [line for line in script if touching.search(line) and guard not in line]
    assert not touching.search(json.dumps(template)), "the template (its comments aside) runs no systemctl"


def test_metadata_guard_enabled_in_the_image(script):
    """The image loads the metadata guard at every boot (only root and tunnat reach IMDS): its unit enabled after
    the install, the build failing unless it is."""
    install = line_index(script, r"^apt_get install ", "the install")
    enable = line_index(script, r"^systemctl enable tunnat-imds-guard\.service$", "the guard enabled")
    check = line_index(script, r'^\[ "\$\(systemctl is-enabled tunnat-imds-guard\.service\)" = enabled \] \|\| fail ',
                       "anything but enabled fails the build")
    assert install < enable < check


def test_postinst_neither_enables_nor_starts():
    """What the recipe relies on: the package's postinst enables the unit only where it was enabled before (an
    upgrade, a reinstall), and never starts it."""
    with open(os.path.join(REPO, "packaging", "debian", "postinst")) as f:
        postinst = f.read()
    # Commands only: its messages tell the administrator to run 'systemctl enable --now tunnat'.
    commands = [line.strip() for line in postinst.splitlines() if not re.match(r"\s*(#|echo\b|$)", line)]
    starting = re.compile(r"deb-systemd-invoke (start|restart)|systemctl (\S+ )*(start|restart|enable)\b")
    assert not [line for line in commands if starting.search(line)]
    assert postinst.count("deb-systemd-helper enable") == 1
    assert "for unit in tunnat.service tunnat-imds-guard.service; do" in postinst
    assert re.search(r'if deb-systemd-helper --quiet was-enabled "\$unit"; then\s*\n\s*# [^\n]*\n\s*'
                     r'deb-systemd-helper enable "\$unit"', postinst)


def test_cloud_init_dropin_turns_off_secondary_ips():
    with open(DROPIN) as f:
        assert yaml.safe_load(f) == {"datasource": {"Ec2": {"apply_full_imds_network_config": False}}}


def test_cloud_init_dropin_installed_where_cloud_init_reads_it(script):
    """cloud-init reads /etc/cloud/cloud.cfg.d/*.cfg in name order, later files winning: a .cfg named after
    Debian's own (01_debian_cloud.cfg and the like)."""
    i = line_index(script, r"^install -D -m 0644 -o root -g root \"\$dropin\" /etc/cloud/cloud\.cfg\.d/\S+$",
                   "the drop-in installed")
    target = script[i].split()[-1]
    assert target == "/etc/cloud/cloud.cfg.d/99-tunnat-imds-network.cfg"
    assert "dropin=/tmp/99-tunnat-imds-network.cfg" in script


def test_apt_caches_and_instance_state_cleaned_last(script):
    install = line_index(script, r"^apt_get install ", "the install")
    clean = line_index(script, r"^apt_get clean$", "apt's package cache emptied")
    lists = line_index(script, r"^rm -rf /var/lib/apt/lists/\*$", "apt's lists removed")
    cloud = line_index(script, r"^cloud-init clean --logs$", "cloud-init's instance state removed")
    machine = line_index(script, r"^truncate -s 0 /etc/machine-id$", "an empty machine id, not a missing one")
    assert install < clean and install < lists and install < cloud and install < machine
    assert not any("--machine-id" in line for line in script), "a deleted machine id makes a first boot (presets)"


def test_provision_script_is_valid_sh():
    assert os.access(PROVISION, os.X_OK), "provision.sh is executable in git"
    with open(PROVISION) as f:
        first = f.readline()
    assert first == "#!/bin/sh\n"
    syntax = subprocess.run(["sh", "-n", PROVISION], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        lint = subprocess.run([shellcheck, "-s", "sh", PROVISION], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
