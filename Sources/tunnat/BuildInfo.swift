/// The version `tunnat --version` prints, held here and nowhere else: scripts/package-deb.sh reads the package's
/// version back from the built binary, and writes the commit it packaged over `commit` in its copy of the tree.
enum BuildInfo {
    /// The release: bump it here, and add an entry to packaging/changelog.
    static let version = "0.15.0"
    /// The commit the binary was built from; "unknown" in a build from a work tree (`swift build`), whose sources
    /// may differ from any commit. A packaged build names the commit it was exported from (git rev-parse --short=12).
    static let commit = "unknown"
    /// What `tunnat --version` prints: `tunnat 0.15.0 (0123456789ab)`.
    static let versionLine = "tunnat \(version) (\(commit))"
}
