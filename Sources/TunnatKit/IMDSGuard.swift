/// The instance metadata service guard: an nftables ruleset that lets only root and the service's own user open
/// connections to the instance metadata service (169.254.169.254, and fd00:ec2::254 on Nitro instances). The
/// instance role's credentials are there, and the role may read the sync key from SSM: without the guard any local
/// user could. The rule matches the owner of the sending socket (`meta skuid`), so it covers what this host
/// originates; packets forwarded through it (a container on a bridge, the NAT's own clients) have no local owner
/// and are not this rule's business. Loading the ruleset again replaces the table: `nft -f` applies it atomically.
public enum IMDSGuard {
    public static let table = "tunnat_imds_guard"
    public static let addresses = (v4: "169.254.169.254", v6: "fd00:ec2::254")

    /// The ruleset for `nft -f -`, admitting root (uid 0) and `uids`.
    public static func ruleset(admitting uids: [UInt32]) -> String {
        let admitted = ([0] + uids).reduce(into: [UInt32]()) { if !$0.contains($1) { $0.append($1) } }
            .map(String.init).joined(separator: ", ")
        return """
            # tunnat imds-guard: only uid(s) \(admitted) may reach the instance metadata service.
            # Load with: tunnat imds-guard | nft -f -     Remove with: nft delete table inet \(table)
            table inet \(table)
            delete table inet \(table)
            table inet \(table) {
                chain output {
                    type filter hook output priority filter; policy accept;
                    ip daddr \(addresses.v4) meta skuid != { \(admitted) } counter reject with icmp type admin-prohibited
                    ip6 daddr \(addresses.v6) meta skuid != { \(admitted) } counter reject with icmpv6 type admin-prohibited
                }
            }

            """
    }
}
