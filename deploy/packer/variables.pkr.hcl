# The image recipe's inputs (docs/aws.md, "The image"). Only deb_path has no default:
#
#   packer build -var "deb_path=$(ls out/tunnat_*_amd64.deb)" deploy/packer
#
# Relative paths are taken from the directory packer runs in: run it from the repository's top directory.

variable "deb_path" {
  type        = string
  description = "The package scripts/package-deb.sh made, out/tunnat_<version>_<amd64|arm64>.deb; it names the AMI and its architecture."

  validation {
    condition     = can(regex("tunnat_[^/_]+_(amd64|arm64)\\.deb$", var.deb_path))
    error_message = "The deb_path must name an amd64 or arm64 tunnat package: out/tunnat_<version>_<amd64|arm64>.deb."
  }
}

variable "region" {
  type        = string
  description = "The region the AMI is built and registered in (aws ec2 copy-image for others)."
  default     = "us-east-1"
}

variable "instance_type" {
  type        = string
  description = "The instance that builds the image, of the package's architecture; terminated after the build. Not the NAT's type. Empty: t3.small (amd64) or t4g.small (arm64)."
  default     = ""
}

variable "ami_name_prefix" {
  type        = string
  description = "The AMI's name is <prefix>-<tunnat version>-<UTC time of the build>."
  default     = "tunnat"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", var.ami_name_prefix))
    error_message = "The ami_name_prefix must be 1 to 64 letters, digits, dots, dashes or underscores, the first a letter or digit."
  }
}
