#!/usr/bin/env bash
# Builds the Debian package tunnat_<version>_<arch>.deb from the committed tree (HEAD): a release build with the
# Swift runtime linked in statically, stripped; the systemd unit, the conffile /etc/tunnat/tunnat.yaml, a man page
# per command, shell completions, the sysctl.d and sysusers.d drop-ins. docs/packaging.md says what it installs.
#
#   scripts/package-deb.sh [--output DIR]     (default DIR: out/)
#
# Only what HEAD holds is packaged: uncommitted changes are not (the script says so when there are any), so the
# commit that `tunnat --version` names is exactly what was built. HEAD is copied to .build-deb/src (gitignored)
# through an index of its own, which rewrites only the files that changed, and built there, so a second run is
# incremental. The package's version is the binary's own (`tunnat --version`) with the Debian revision of
# packaging/changelog's first entry, which must name the same upstream version.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

output=$here/out
while [ $# -gt 0 ]; do
  case "$1" in
    --output) [ $# -ge 2 ] || { echo "package-deb.sh: --output needs a directory" >&2; exit 64; }; output=$2; shift 2 ;;
    *) echo "usage: scripts/package-deb.sh [--output DIR]" >&2; exit 64 ;;
  esac
done
mkdir -p "$output"
output=$(cd "$output" && pwd)

scripts/install-deps.sh --package
fail() { echo "package-deb.sh: $*" >&2; exit 1; }
step() { printf '== %s\n' "$*" >&2; }

# --- the committed tree, and the commit written into it ---------------------------------------------------------
commit=$(git rev-parse --short=12 HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "package-deb.sh: the work tree has uncommitted changes; they are not packaged: this builds HEAD ($commit)" >&2
fi
stage=$here/.build-deb
src=$stage/src
mkdir -p "$src"
step "copying HEAD ($commit) to $src"
# read-tree --reset -u against the stage's own index: files whose content is unchanged keep their times (so the
# build stays incremental), changed ones are rewritten, files gone from HEAD are removed; .build is untracked.
GIT_INDEX_FILE=$stage/index git --work-tree="$src" read-tree --reset -u HEAD
info=$src/Sources/tunnat/BuildInfo.swift
sed -i "s/^\(    static let commit = \)\"unknown\"$/\1\"$commit\"/" "$info"
grep -q "^    static let commit = \"$commit\"$" "$info" || fail "could not write the commit into $info (is 'static let commit = \"unknown\"' still there?)"

# --- the release build -------------------------------------------------------------------------------------------
step "swift build -c release --static-swift-stdlib (in $src)"
# The Swift standard library, Foundation and Dispatch linked in statically: the binary runs on a machine without
# the Swift toolchain, and depends on C libraries only (libc, libcurl, libcrypto, and libstdc++ and libgcc_s for
# the runtime), which dpkg-shlibdeps turns into Depends. No $ORIGIN rpath (nothing is installed beside it), and
# bind-now for a fully read-only relocation table (-z now; -z relro is the default).
status=0
swift build -c release --static-swift-stdlib --disable-local-rpath -Xlinker -z -Xlinker now --package-path "$src" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "the release build failed"
built=$src/.build/release/tunnat

version_line=$("$built" --version)
[[ "$version_line" =~ ^tunnat\ ([0-9][0-9A-Za-z.+~]*)\ \(([0-9a-f]{12})\)$ ]] || fail "tunnat --version printed '$version_line', not 'tunnat VERSION (COMMIT)'"
upstream=${BASH_REMATCH[1]}
[ "${BASH_REMATCH[2]}" = "$commit" ] || fail "tunnat --version names ${BASH_REMATCH[2]}, HEAD is $commit"
changelog=$src/packaging/changelog
debian_version=$(dpkg-parsechangelog -l "$changelog" -S Version)
[ "${debian_version%-*}" = "$upstream" ] \
  || fail "packaging/changelog's first entry is $debian_version, the binary is $upstream: add an entry for $upstream-1"
arch=$(dpkg --print-architecture)
deb=$output/tunnat_${debian_version}_${arch}.deb

# --- the package tree --------------------------------------------------------------------------------------------
root=$stage/root
rm -rf "$root"
install -d "$root/DEBIAN"
install -D -m 0755 "$built" "$root/usr/bin/tunnat"
# As dh_strip does for an executable: debugging symbols and the notes and comments no one reads at run time.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/tunnat"
tunnat=$root/usr/bin/tunnat
"$tunnat" --version >/dev/null || fail "the stripped binary does not run"

step "the conffile, the unit, the drop-ins"
install -d -m 0755 "$root/etc/tunnat"
{
  echo "# /etc/tunnat/tunnat.yaml: read by tunnat.service (tunnat run --config /etc/tunnat/tunnat.yaml)."
  echo "# Set nat.private_prefixes and nat.pool, check with 'tunnat check-config /etc/tunnat/tunnat.yaml', then"
  echo "# 'systemctl enable --now tunnat'. A key file (replication.key_file) must be owned by the user tunnat, mode 0600."
  "$tunnat" default-config | sed 's|^control_socket: /run/tunnat\.sock$|control_socket: /run/tunnat/tunnat.sock|'
} > "$root/etc/tunnat/tunnat.yaml"
chmod 0644 "$root/etc/tunnat/tunnat.yaml"
grep -q '^control_socket: /run/tunnat/tunnat.sock$' "$root/etc/tunnat/tunnat.yaml" \
  || fail "tunnat default-config has no 'control_socket: /run/tunnat.sock' line to point at /run/tunnat/tunnat.sock"
"$tunnat" check-config "$root/etc/tunnat/tunnat.yaml" >/dev/null || fail "the packaged configuration does not check"
install -D -m 0644 "$src/packaging/tunnat.service" "$root/usr/lib/systemd/system/tunnat.service"
install -D -m 0644 "$src/packaging/tunnat-imds-guard.service" "$root/usr/lib/systemd/system/tunnat-imds-guard.service"
install -D -m 0644 "$src/packaging/sysctl.conf" "$root/usr/lib/sysctl.d/60-tunnat.conf"
install -D -m 0644 "$src/packaging/sysusers.conf" "$root/usr/lib/sysusers.d/tunnat.conf"

step "man pages (swift-argument-parser's generate-manual plugin)"
# The plugin (`swift package plugin generate-manual`) builds the whole package again for itself, without
# --static-swift-stdlib: a second full build, which overwrote .build/release/tunnat with a dynamically linked one
# when tried here. So the tool the plugin runs, generate-manual from the same swift-argument-parser checkout, is
# built on its own (a small debug build, cached in .build-deb/generate-manual) and run on the binary packaged.
parser=$src/.build/checkouts/swift-argument-parser
[ -f "$parser/Tools/generate-manual/GenerateManual.swift" ] || fail "no generate-manual tool in $parser"
status=0
swift build --package-path "$parser" --scratch-path "$stage/generate-manual" --product generate-manual 2>&1 \
  | grep -vE '^\[[0-9]+/[0-9]+\]' | grep -E '^(error|Build)' || status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "building swift-argument-parser's generate-manual failed"
manual=$stage/manual
rm -rf "$manual" && mkdir -p "$manual"
# One page, tunnat(1), with a section per subcommand: separate pages per subcommand (--multi-page) name
# themselves "tunnat run" in NAME, which whatis (and lintian's bad-whatis-entry) cannot read.
"$stage/generate-manual/debug/generate-manual" "$tunnat" --section 1 \
  --date "$(date -u -d "@$(dpkg-parsechangelog -l "$changelog" -S Timestamp)" +%F)" --output-directory "$manual"
[ -f "$manual/tunnat.1" ] || fail "generate-manual wrote no tunnat.1"
install -d "$root/usr/share/man/man1"
gzip -9n < "$manual/tunnat.1" > "$root/usr/share/man/man1/tunnat.1.gz"

step "shell completions"
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d"
# bash-completion sources the file: no #! line (lintian: bash-completion-with-hashbang).
"$tunnat" --generate-completion-script bash | sed '1{/^#!/d}' > "$root/usr/share/bash-completion/completions/tunnat"
"$tunnat" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_tunnat"
"$tunnat" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/tunnat.fish"

doc=$root/usr/share/doc/tunnat
install -D -m 0644 "$src/packaging/copyright" "$doc/copyright"
install -D -m 0644 "$src/packaging/lintian-overrides" "$root/usr/share/lintian/overrides/tunnat"
gzip -9n < "$changelog" > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

# --- the control area --------------------------------------------------------------------------------------------
step "control: Depends from dpkg-shlibdeps"
# dpkg-shlibdeps reads debian/control for nothing but its presence here; it answers from the shlibs of the
# libraries the binary is linked against, as installed on this machine (libcurl4 or libcurl4t64, libssl3 or
# libssl3t64). adduser: the postinst's fallback where there is no systemd-sysusers (lintian asks for the
# dependency whenever a maintainer script can call it). No iproute2: the policy routing is netlink, in-process.
shlibs=$stage/shlibs
rm -rf "$shlibs" && mkdir -p "$shlibs/debian" && touch "$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O "$tunnat" 2>"$stage/shlibdeps.log") || { cat "$stage/shlibdeps.log" >&2; fail "dpkg-shlibdeps failed"; }
depends=${depends#shlibs:Depends=}
[ -n "$depends" ] || fail "dpkg-shlibdeps found no dependencies"
depends="$depends, adduser"
maintainer=$(dpkg-parsechangelog -l "$changelog" -S Maintainer)
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$debian_version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s/@DEPENDS@/$depends/" \
    "$src/packaging/debian/control.in" > "$root/DEBIAN/control"
for script in postinst prerm postrm; do install -m 0755 "$src/packaging/debian/$script" "$root/DEBIAN/$script"; done
install -m 0644 "$src/packaging/debian/conffiles" "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

# Reproducible: every file dated from the changelog's entry, root-owned, directories 0755.
timestamp=$(dpkg-parsechangelog -l "$changelog" -S Timestamp)
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f ! -path "$root/DEBIAN/*" ! -path "$root/usr/bin/*" -exec chmod 0644 {} +
find "$root" -exec touch --no-dereference --date="@$timestamp" {} +
step "dpkg-deb --build"
SOURCE_DATE_EPOCH=$timestamp dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "package-deb.sh: $deb ($version_line, $(stat -c %s "$root/usr/bin/tunnat") bytes of binary, Depends: $depends)"
