# tunnat's AMI: the newest official Debian 12 (bookworm) image of the package's architecture (amd64 or arm64) with
# the tunnat package installed, its unit left disabled, and cloud-init told to leave the ENI's secondary private
# IPs (the NAT pool) off the OS. docs/aws.md ("The image") has the commands; from the repository's top directory:
#
#   scripts/package-deb.sh                                              # out/tunnat_<version>_<arch>.deb
#   packer init deploy/packer
#   packer build -var "deb_path=$(ls out/tunnat_*_amd64.deb)" deploy/packer
#
# scripts/package-deb.sh makes the package of the machine it runs on: an arm64 package (for Graviton instances) is
# made on an arm64 Debian machine, and the AMI built from it is arm64.
#
# The instances the CloudFormation stacks (deploy/cloudformation/tunnat-pair.yaml) start from this AMI write
# /etc/tunnat/tunnat.yaml and the replication key from their user data, then enable and start tunnat.service.

packer {
  required_version = ">= 1.9.0"
  required_plugins {
    amazon = {
      # imds_support (the AMI attribute that makes IMDSv2 the default for its instances) is in the 1.x releases'
      # AMIConfig (docs-partials/builder/common/AMIConfig-not-required.mdx in hashicorp/packer-plugin-amazon).
      version = ">= 1.2.0, < 2.0.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

locals {
  # "0.15.0-1" from out/tunnat_0.15.0-1_amd64.deb (the variable's validation guarantees the shape); an AMI name
  # admits letters, digits and ()[] ./-_'@ only, so anything else in the version (such as "+" or "~") becomes "-".
  tunnat_version = regex_replace(regex("tunnat_([^/_]+)_(?:amd64|arm64)\\.deb$", var.deb_path)[0], "[^0-9A-Za-z.-]", "-")
  built_at       = formatdate("YYYYMMDD-hhmmss", timestamp())
  # The package's architecture, Debian's name (amd64, arm64), and EC2's (x86_64, arm64).
  arch     = regex("_(amd64|arm64)\\.deb$", var.deb_path)[0]
  ec2_arch = local.arch == "arm64" ? "arm64" : "x86_64"
  # The building instance: the one given, else a small one of the package's architecture.
  builder = var.instance_type != "" ? var.instance_type : (local.arch == "arm64" ? "t4g.small" : "t3.small")
}

source "amazon-ebs" "debian12" {
  region        = var.region
  instance_type = local.builder

  # The Debian project's own AMIs: account 136693071363 publishes the official images of Debian 10 on (kops pull
  # request 12161, "Debian 11: Release AMIs use same AWS Owner ID as Buster"; kubernetes/kops,
  # upup/pkg/fi/cloudup/awsup/aws_cloud.go: WellKnownAccountDebian = "136693071363", and kops's guessSSHUser logs
  # in to that owner's images as "admin"). Debian 12's are named debian-12-<arch>-<date>-<build>; the pattern
  # leaves out the other architecture and debian-12-backports-<arch>-.... Checked in those sources, not against
  # the EC2 API (no AWS account here): `aws ec2 describe-images --owners 136693071363 --filters
  # Name=name,Values='debian-12-arm64-*'` lists what this filter picks from.
  source_ami_filter {
    owners      = ["136693071363"]
    most_recent = true
    filters = {
      name                = "debian-12-${local.arch}-*"
      architecture        = local.ec2_arch
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  ssh_username            = "admin"
  temporary_key_pair_type = "ed25519"
  # The build's temporary public key is taken out of ~admin/.ssh/authorized_keys before the snapshot; an instance
  # started from the AMI gets its own key pair's key from cloud-init.
  ssh_clear_authorized_keys = true

  # IMDSv2 only on the building instance (a token is needed for every metadata read; hop limit 1: nothing
  # forwarded or containerised on it may reach the metadata service)...
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  # ... and on every instance started from the AMI unless its launch says otherwise: ImdsSupport v2.0 makes
  # HttpTokens default to "required" (and the hop limit to 2). tunnat's AWS client uses IMDSv2 only.
  imds_support = "v2.0"

  ami_name        = "${var.ami_name_prefix}-${local.tunnat_version}-${local.built_at}"
  ami_description = "tunnat ${local.tunnat_version} on Debian 12 ${local.arch}; tunnat.service disabled until configured"
  tags = {
    Name           = "${var.ami_name_prefix}-${local.tunnat_version}"
    tunnat_version = local.tunnat_version
    base_ami_id    = "{{ .SourceAMI }}"
    base_ami_name  = "{{ .SourceAMIName }}"
    built_by       = "packer, deploy/packer/tunnat.pkr.hcl"
  }
  snapshot_tags = {
    Name           = "${var.ami_name_prefix}-${local.tunnat_version}"
    tunnat_version = local.tunnat_version
  }
}

build {
  name    = "tunnat"
  sources = ["source.amazon-ebs.debian12"]

  provisioner "file" {
    source      = var.deb_path
    destination = "/tmp/tunnat.deb"
  }

  # cloud-init's EC2 datasource applies the full IMDS network configuration by default, secondary private IPs
  # included, as local addresses of the interface (files/99-tunnat-imds-network.cfg says where that is written
  # down and why it breaks the NAT).
  provisioner "file" {
    source      = "${path.root}/files/99-tunnat-imds-network.cfg"
    destination = "/tmp/99-tunnat-imds-network.cfg"
  }

  # As root: apt-get install of the package, the checks that its unit is neither enabled nor running, the drop-in
  # into /etc/cloud/cloud.cfg.d/, and the cleaning (apt's caches and lists, cloud-init's state of this instance).
  #
  # tunnat.service stays disabled in the image. The package's postinst registers the unit but neither enables
  # nor starts it (packaging/debian/postinst, docs/packaging.md "Install"): started before its configuration is
  # written, tunnat would install its policy routing for the packaged default configuration and keep a blackhole
  # when stopped. So it is not started on the building instance, and not at the first boot of an instance either:
  # the user data writes /etc/tunnat/tunnat.yaml and the key, then runs `systemctl enable --now tunnat`.
  # provision.sh fails the build if the package ever leaves the unit enabled or running.
  provisioner "shell" {
    script          = "${path.root}/files/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  }

  # The AMI id, for the CloudFormation stack's AMI parameter: out/tunnat-ami.json (and printed at the end).
  post-processor "manifest" {
    output     = "out/tunnat-ami.json"
    strip_path = true
    custom_data = {
      tunnat_version = local.tunnat_version
    }
  }
}
