#!/bin/sh
# Runs as root on the instance that builds tunnat's AMI (deploy/packer/tunnat.pkr.hcl, its last provisioner), after
# the package and the cloud-init drop-in were uploaded to /tmp: installs the package with its dependencies and
# nftables, enables the metadata guard (tunnat-imds-guard.service), fails unless tunnat.service is left disabled
# and stopped, installs the drop-in, and cleans what the image should not
# carry (apt's package cache and lists, this instance's cloud-init state and logs).
set -eu

deb=/tmp/tunnat.deb
dropin=/tmp/99-tunnat-imds-network.cfg
fail() { echo "provision.sh: $*" >&2; exit 1; }

# The first boot's cloud-init must be done before packages are installed and its state is cleaned. Its exit
# status: 0 done, 1 failed (bookworm's 22.4); later releases add 2, done with recoverable errors.
status=0
cloud-init status --wait >/dev/null || status=$?
[ "$status" = 0 ] || [ "$status" = 2 ] \
  || fail "cloud-init status --wait exited $status ('cloud-init status --long' says why)"

# apt-get rather than dpkg -i: it fetches the Depends (libcurl4, libssl3, adduser...) from the Debian archive.
# apt-daily and unattended-upgrades may hold the dpkg lock just after boot: wait for it rather than fail.
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -q -o DPkg::Lock::Timeout=600 "$@"; }
apt_get update
apt_get install -y --no-install-recommends "$deb" nftables
rm -f "$deb"
tunnat --version

# The metadata guard, at every boot before the network is up: only root and tunnat reach the instance metadata
# service and the role's credentials there (docs/aws.md, "What a local user can reach").
systemctl enable tunnat-imds-guard.service
[ "$(systemctl is-enabled tunnat-imds-guard.service)" = enabled ] || fail "tunnat-imds-guard.service could not be enabled"

# The unit stays disabled in the image: the instance's user data enables and starts it once it has written the
# configuration and the key (tunnat.pkr.hcl says why). The package's postinst neither enables nor starts it
# (packaging/debian/postinst); this stops the build if that ever changes.
state=$(systemctl is-enabled tunnat.service 2>/dev/null) || true
[ "$state" = disabled ] \
  || fail "tunnat.service is '$state' after installing the package, not 'disabled' (packaging/debian/postinst)"
if systemctl is-active --quiet tunnat.service; then
  fail "tunnat.service is running on the image-building instance after the install (packaging/debian/postinst)"
fi

install -D -m 0644 -o root -g root "$dropin" /etc/cloud/cloud.cfg.d/99-tunnat-imds-network.cfg
rm -f "$dropin"

# No package cache and no package lists in the image: they are stale by the time it boots. An instance that
# installs anything runs apt-get update first (the user data does, before it installs the .deb where the image
# has no tunnat).
apt_get clean
rm -rf /var/lib/apt/lists/*
# This instance's cloud-init state and logs (its instance id, user data, semaphores): an instance started from the
# image runs cloud-init as on a first boot, which also makes new SSH host keys (cc_ssh, ssh_deletekeys: true by
# default, once per instance).
cloud-init clean --logs
# And its machine id, which systemd, the journal and systemd-networkd derive identifiers from: left empty, each
# instance gets its own at boot, and the boot is not a "first boot" (machine-id(5), "First Boot Semantics"). Not
# `cloud-init clean --machine-id`, which deletes the file: a missing machine id is a first boot, at which systemd
# applies the unit presets to every unit, and a preset that enables by default would enable tunnat.service.
# dbus's copy, where it is a file rather than the usual symlink to /etc/machine-id, would be read instead.
truncate -s 0 /etc/machine-id
if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then rm -f /var/lib/dbus/machine-id; fi
echo "provision.sh: $(tunnat --version) installed; tunnat.service disabled; the metadata guard enabled; cloud-init's drop-in in place"
