import AWS
import Failover
import Health
import PacketKit
import SystemCalls
import Yams

/// The failover section, in AWSnycast's format (poll_time, healthchecks, remote_healthchecks, routetables or
/// route_tables, each key meaning what it means there) plus tunnat's own keys: aws, hold_down, pool_addresses (or
/// its one-address form pool_address).
/// `tunnat routes --config F` takes either a tunnat configuration with a `failover:` section or an AWSnycast file
/// as it is.
public enum FailoverConfigFile {
    public static let sectionKeys = ["poll_time", "healthchecks", "remote_healthchecks", "routetables", "aws", "hold_down",
                                     "pool_addresses", "pool_address"]
    /// AWSnycast's spellings that mean the same key.
    static let sectionAliases = ["route_tables": "routetables"]

    /// Reads `path`: its `failover:` section if it has one, else the whole file as an AWSnycast configuration.
    public static func load(path: String) throws(ConfigError) -> FailoverConfiguration {
        let text = try ConfigFile.readText(path)
        return try parse(text, file: path)
    }

    /// The file is parsed once: a tunnat configuration (with a `failover:` section) is read whole, so that its
    /// other sections are checked too; anything else is read as an AWSnycast file.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> FailoverConfiguration {
        let root = try ConfigFile.compose(text, file: file, emptyMessage: "the file is empty; it needs routetables")
        let reader = ConfigReader(file: file)
        if case .mapping(let mapping) = root, mapping.keys.contains(where: { $0.string == "failover" }) {
            guard let failover = try ConfigFile.parse(root, reader: reader).failover else {
                throw ConfigError(file: file, line: nil, key: "failover", message: "empty section")
            }
            return failover
        }
        return try reader.failover(root, key: "", pool: nil)
    }
}

extension ConfigReader {
    /// `pool`: nat.pool, which the pool addresses must be taken from; nil in a file without a nat section (an
    /// AWSnycast file), where they cannot be checked against it.
    func failover(_ node: Node, key prefix: String, pool: [IPv4Address]?) throws(ConfigError) -> FailoverConfiguration {
        func k(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }
        let section = try mapping(node, key: prefix, accepted: FailoverConfigFile.sectionKeys,
                                  aliases: FailoverConfigFile.sectionAliases)
        var config = FailoverConfiguration()
        if let v = section["poll_time"] { config.pollTime = try duration(v, k("poll_time")) }
        if let v = section["hold_down"] { config.holdDown = try duration(v, k("hold_down")) }
        config.poolAddresses = try poolAddresses(section, prefix: prefix, pool: pool)
        if let v = section["aws"] { config.aws = try aws(v, k("aws")) }
        if let v = section["healthchecks"] {
            for (name, item) in try named(v, k("healthchecks")) {
                config.healthChecks[name] = try healthCheck(item, "\(k("healthchecks")).\(name)", remote: false)
            }
        }
        if let v = section["remote_healthchecks"] {
            for (name, item) in try named(v, k("remote_healthchecks")) {
                config.remoteHealthChecks[name] = try healthCheck(item, "\(k("remote_healthchecks")).\(name)", remote: true)
            }
        }
        guard let tablesNode = section["routetables"] else {
            throw fail(node, k("routetables"), "missing; give the route tables to manage (routetables: NAME: {find, manage_routes})")
        }
        // Checked before the routes, which name the health checks.
        try validate(config.problems(), prefix: prefix)
        for (name, item) in try named(tablesNode, k("routetables")) {
            config.routeTables[name] = try routeTable(item, "\(k("routetables")).\(name)", config: config)
        }
        return config
    }

    /// `pool_addresses`: a list of addresses of nat.pool, or `all` for every one of them (expanded here), or its
    /// one-address form `pool_address: X`. Each address once, and each one of nat.pool's: an address the NAT does
    /// not translate to would be moved to this instance for nothing.
    func poolAddresses(_ section: [String: Node], prefix: String, pool: [IPv4Address]?) throws(ConfigError) -> [String] {
        func k(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }
        let key: String
        let expected: String
        let items: [(String, Node)]
        switch (section["pool_address"], section["pool_addresses"]) {
        case (nil, nil):
            return []
        case (.some, .some(let many)):
            throw fail(many, k("pool_addresses"),
                       "'pool_address' and 'pool_addresses' both given; give one of them (pool_address: X is pool_addresses: [X])")
        case (.some(let one), nil):
            key = k("pool_address")
            expected = "an IPv4 address"
            let text = try scalar(one, key, expected: expected)
            if text == "all" { throw fail(one, key, "expected one IPv4 address; for every address of nat.pool write pool_addresses: all") }
            items = [(text, one)]
        case (nil, .some(let many)):
            key = k("pool_addresses")
            expected = "an IPv4 address, or all for every address of nat.pool"
            if case .scalar(let scalar) = many, scalar.string == "all" {
                guard let pool else {
                    throw fail(many, key, "'all' means every address of nat.pool, and this file has no nat section; list the addresses")
                }
                return pool.map(\.description)
            }
            items = try list(many, key, expected: "IPv4 addresses, or all")
            guard !items.isEmpty else { throw fail(many, key, "expected IPv4 addresses, or all, got an empty list; leave the key out to move none") }
        }
        var addresses: [String] = []
        for (text, item) in items {
            guard let address = IPv4Address(text) else { throw fail(item, key, "expected \(expected), got '\(text)'") }
            guard !addresses.contains(address.description) else { throw fail(item, key, "\(text) is given twice; give each address once") }
            if let pool, !pool.contains(address) {
                throw fail(item, key, "\(text) is not in nat.pool (\(pool.map(\.description).joined(separator: ", "))): the NAT does not "
                    + "translate to it, so moving it to this instance would serve nothing; give addresses of nat.pool, or all")
            }
            addresses.append(address.description)
        }
        return addresses
    }

    func healthCheck(_ node: Node, _ key: String, remote: Bool) throws(ConfigError) -> HealthCheckSpec {
        let keys = ["type", "destination", "rise", "fall", "every", "timeout", "config", "run_on_healthy", "run_on_unhealthy"]
        let section = try mapping(node, key: key, accepted: keys)
        guard let typeNode = section["type"] else {
            throw fail(node, "\(key).type", "missing; expected one of \(HealthCheckSpec.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let typeText = try scalar(typeNode, "\(key).type", expected: "a health check type")
        guard let kind = HealthCheckSpec.Kind(rawValue: typeText) else {
            throw fail(typeNode, "\(key).type", "expected one of \(HealthCheckSpec.Kind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(typeText)'")
        }
        var spec = HealthCheckSpec(kind: kind)
        if let v = section["destination"] {
            let text = try scalar(v, "\(key).destination", expected: "an IPv4 address")
            guard IPv4Address(text) != nil else { throw fail(v, "\(key).destination", "expected an IPv4 address, got '\(text)'") }
            spec.destination = text
        }
        if let v = section["rise"] { spec.rise = try integer(v, "\(key).rise") }
        if let v = section["fall"] { spec.fall = try integer(v, "\(key).fall") }
        if let v = section["every"] { spec.every = try duration(v, "\(key).every") }
        if let v = section["timeout"] { spec.timeout = try duration(v, "\(key).timeout") }
        if let v = section["run_on_healthy"] { spec.runOnHealthy = try argv(v, "\(key).run_on_healthy") }
        if let v = section["run_on_unhealthy"] { spec.runOnUnhealthy = try argv(v, "\(key).run_on_unhealthy") }
        let configKeys: [String]
        switch kind {
        case .ping: configKeys = []
        case .tcp: configKeys = ["port", "send", "expect", "tls", "cert", "skipVerify", "serverName"]
        case .http, .https: configKeys = ["port", "path", "status", "expect", "cert", "skipVerify", "serverName"]
        case .command: configKeys = ["command", "arguments"]
        }
        // AWSnycast's other spellings; giving both of a pair is a mistake.
        var aliases: [String: String] = [:]
        if configKeys.contains("tls") { aliases["ssl"] = "tls" }
        if configKeys.contains("cert") { aliases["certPath"] = "cert" }
        let c = try section["config"].map { (n) throws(ConfigError) in
            try mapping(n, key: "\(key).config", accepted: configKeys, aliases: aliases)
        } ?? [:]
        let ck = "\(key).config"
        if let v = c["port"] { spec.port = try integer(v, "\(ck).port") }
        if let v = c["send"] { spec.send = try scalar(v, "\(ck).send", expected: "a string") }
        if let v = c["expect"] { spec.expect = try scalar(v, "\(ck).expect", expected: "a string") }
        if let v = c["tls"] { spec.tls = try boolean(v, "\(ck).tls") }
        if let v = c["cert"] { spec.caCertificate = try scalar(v, "\(ck).cert", expected: "a PEM certificate or a file path") }
        if let v = c["skipVerify"] { spec.skipVerify = try boolean(v, "\(ck).skipVerify") }
        if let v = c["serverName"] { spec.serverName = try scalar(v, "\(ck).serverName", expected: "a host name") }
        if let v = c["path"] { spec.path = try scalar(v, "\(ck).path", expected: "a URL path") }
        if let v = c["status"] {
            for (text, item) in try list(v, "\(ck).status", expected: "HTTP status codes") {
                guard let code = Int(text) else { throw fail(item, "\(ck).status", "expected HTTP status codes from 100 to 599, got '\(text)'") }
                spec.expectStatus.append(code)
            }
        }
        if let v = c["command"] { spec.command = try scalar(v, "\(ck).command", expected: "a program") }
        if let v = c["arguments"] { spec.arguments = try list(v, "\(ck).arguments", expected: "strings").map(\.0) }
        return spec
    }

    func routeTable(_ node: Node, _ key: String, config: FailoverConfiguration) throws(ConfigError) -> RouteTableSpec {
        let section = try mapping(node, key: key, accepted: ["find", "manage_routes"])
        guard let findNode = section["find"] else {
            throw fail(node, "\(key).find", "missing; expected a finder such as {type: by_tag, config: {key: Name, value: private}}")
        }
        let (finder, noResultsOK) = try finder(findNode, "\(key).find", top: true)
        guard let routesNode = section["manage_routes"], case .sequence(let items) = routesNode, !items.isEmpty else {
            throw fail(section["manage_routes"] ?? node, "\(key).manage_routes", "missing or empty; expected a list of routes ({cidr, instance, healthcheck, ...})")
        }
        var routes: [ManagedRoute] = []
        for (i, item) in items.enumerated() {
            routes.append(try managedRoute(item, "\(key).manage_routes[\(i)]", config: config))
        }
        return RouteTableSpec(find: finder, noResultsOK: noResultsOK, manageRoutes: routes)
    }

    static let finderTypes = ["by_tag", "by_tag_regexp", "by_id", "and", "or", "main", "subnet", "has_route_to"]

    func finder(_ node: Node, _ key: String, top: Bool) throws(ConfigError) -> (RouteTableFinder, Bool) {
        let keys = top ? ["type", "config", "not", "no_results_ok"] : ["type", "config", "not"]
        let section = try mapping(node, key: key, accepted: keys)
        guard let typeNode = section["type"] else {
            throw fail(node, "\(key).type", "missing; expected one of \(Self.finderTypes.joined(separator: ", "))")
        }
        let type = try scalar(typeNode, "\(key).type", expected: "a finder type")
        let configNode = section["config"]
        let ck = "\(key).config"
        func value(_ name: String, _ c: [String: Node]) throws(ConfigError) -> String {
            guard let v = c[name] else { throw fail(configNode ?? node, "\(ck).\(name)", "missing; the \(type) finder needs it") }
            return try scalar(v, "\(ck).\(name)", expected: "a string")
        }
        func config(_ accepted: [String]) throws(ConfigError) -> [String: Node] {
            guard let configNode else { return [:] }
            return try mapping(configNode, key: ck, accepted: accepted)
        }
        var finder: RouteTableFinder
        switch type {
        case "by_tag":
            let c = try config(["key", "value"])
            finder = .byTag(key: try value("key", c), value: try value("value", c))
        case "by_tag_regexp":
            let c = try config(["key", "regexp"])
            let pattern = try value("regexp", c)
            do { _ = try Regex(pattern) } catch {
                throw fail(c["regexp"], "\(ck).regexp", "not a valid regular expression: '\(pattern)'")
            }
            finder = .byTagRegexp(key: try value("key", c), pattern: pattern)
        case "and", "or":
            // AWSnycast documents `config: {filters: [...]}`; its README's example also writes the list directly
            // under config. Both mean the same.
            var listNode: Node?
            var lk = "\(ck).filters"
            if let configNode, case .sequence = configNode { listNode = configNode; lk = ck }
            else { listNode = try config(["filters"])["filters"] }
            guard let listNode, case .sequence(let items) = listNode, !items.isEmpty else {
                throw fail(listNode ?? configNode ?? node, lk, "expected a list of finders")
            }
            var inner: [RouteTableFinder] = []
            for (i, item) in items.enumerated() { inner.append(try self.finder(item, "\(lk)[\(i)]", top: false).0) }
            finder = type == "and" ? .and(inner) : .or(inner)
        case "by_id":
            let c = try config(["route_table_id"])
            let id = try value("route_table_id", c)
            guard id.hasPrefix("rtb-"), id.count > 4 else {
                throw fail(c["route_table_id"], "\(ck).route_table_id", "expected a route table id (rtb-...), got '\(id)'")
            }
            finder = .byID(id)
        case "main":
            _ = try config([])
            finder = .main
        case "subnet":
            finder = .subnet(try value("subnet_id", try config(["subnet_id"])))
        case "has_route_to":
            let c = try config(["cidr"])
            let cidr = try value("cidr", c)
            guard let prefix = IPv4Prefix(cidr) else { throw fail(c["cidr"], "\(ck).cidr", "expected an IPv4 prefix, got '\(cidr)'") }
            finder = .hasRouteTo(prefix.description)
        default:
            throw fail(typeNode, "\(key).type", "expected one of \(Self.finderTypes.joined(separator: ", ")), got '\(type)'")
        }
        if let v = section["not"], try boolean(v, "\(key).not") { finder = .not(finder) }
        let noResultsOK = try section["no_results_ok"].map { (n) throws(ConfigError) in try boolean(n, "\(key).no_results_ok") } ?? false
        return (finder, noResultsOK)
    }

    func managedRoute(_ node: Node, _ key: String, config: FailoverConfiguration) throws(ConfigError) -> ManagedRoute {
        let hooks = ["run_before_replace_route", "run_after_replace_route", "run_before_delete_route", "run_after_delete_route"]
        // AWSnycast's add hooks run where a route is created or replaced: the same hooks by another name.
        let aliases = ["run_before_add_route": "run_before_replace_route", "run_after_add_route": "run_after_replace_route"]
        let section = try mapping(node, key: key, accepted: ["cidr", "instance", "healthcheck", "remote_healthcheck",
                                                             "if_unhealthy", "never_delete"] + hooks, aliases: aliases)
        guard let cidrNode = section["cidr"] else { throw fail(node, "\(key).cidr", "missing; expected an IPv4 prefix such as 0.0.0.0/0") }
        var cidr = try scalar(cidrNode, "\(key).cidr", expected: "an IPv4 or IPv6 prefix")
        // An IPv6 prefix is NAT64's: the route of IPv6-only subnets to the NAT64 prefix (64:ff9b::/96).
        if cidr.contains(":") {
            guard let prefix6 = IPv6Prefix(cidr) else {
                throw fail(cidrNode, "\(key).cidr", "expected an IPv6 prefix such as 64:ff9b::/96 (host bits clear), got '\(cidr)'")
            }
            cidr = prefix6.description
        } else {
            if !cidr.contains("/") { cidr += "/32" }
            guard let prefix = IPv4Prefix(cidr) else {
                throw fail(cidrNode, "\(key).cidr", "expected an IPv4 prefix such as 0.0.0.0/0 (host bits clear), or an IPv6 one such as 64:ff9b::/96, got '\(cidr)'")
            }
            cidr = prefix.description
        }
        var route = ManagedRoute(cidr: cidr)
        if let v = section["instance"] {
            let text = try scalar(v, "\(key).instance", expected: "SELF or an instance id")
            guard text == "SELF" || (text.hasPrefix("i-") && text.count > 2) else {
                throw fail(v, "\(key).instance", "expected SELF or an instance id (i-...), got '\(text)'")
            }
            route.instance = text == "SELF" ? nil : text
        }
        if let v = section["healthcheck"] {
            let name = try scalar(v, "\(key).healthcheck", expected: "a health check name")
            guard config.healthChecks[name] != nil else {
                throw fail(v, "\(key).healthcheck", "no health check named '\(name)'; \(definedNames(config.healthChecks.keys))")
            }
            route.healthCheck = name
        }
        if let v = section["remote_healthcheck"] {
            let name = try scalar(v, "\(key).remote_healthcheck", expected: "a remote health check name")
            guard config.remoteHealthChecks[name] != nil else {
                throw fail(v, "\(key).remote_healthcheck", "no remote health check named '\(name)'; \(definedNames(config.remoteHealthChecks.keys))")
            }
            route.remoteHealthCheck = name
        }
        if let v = section["if_unhealthy"] { route.ifUnhealthy = try boolean(v, "\(key).if_unhealthy") }
        if let v = section["never_delete"] { route.neverDelete = try boolean(v, "\(key).never_delete") }
        if let v = section["run_before_replace_route"] { route.runBeforeReplaceRoute = try argv(v, "\(key).run_before_replace_route") }
        if let v = section["run_after_replace_route"] { route.runAfterReplaceRoute = try argv(v, "\(key).run_after_replace_route") }
        if let v = section["run_before_delete_route"] { route.runBeforeDeleteRoute = try argv(v, "\(key).run_before_delete_route") }
        if let v = section["run_after_delete_route"] { route.runAfterDeleteRoute = try argv(v, "\(key).run_after_delete_route") }
        return route
    }

    func definedNames(_ names: Dictionary<String, HealthCheckSpec>.Keys) -> String {
        names.isEmpty ? "none is defined" : "defined: \(names.sorted().joined(separator: ", "))"
    }

    func aws(_ node: Node, _ key: String) throws(ConfigError) -> AWSSettings {
        let keys = ["region", "endpoint", "metadata_endpoint", "instance_id", "availability_zone", "mac", "vpc_id",
                    "subnet_id", "interface_id", "private_ip", "profile", "max_attempts", "timeout"]
        let section = try mapping(node, key: key, accepted: keys)
        var aws = AWSSettings()
        func text(_ name: String, _ expected: String) throws(ConfigError) -> String? {
            guard let v = section[name] else { return nil }
            let s = try scalar(v, "\(key).\(name)", expected: expected)
            guard !s.isEmpty else { throw fail(v, "\(key).\(name)", "expected \(expected), got an empty string") }
            return s
        }
        aws.endpoint = try text("endpoint", "an http:// or https:// URL")
        aws.metadataEndpoint = try text("metadata_endpoint", "an http:// or https:// URL")
        aws.profile = try text("profile", "a profile name")
        aws.identity = InstanceIdentity(
            instanceID: try text("instance_id", "an instance id") ?? "", region: try text("region", "a region") ?? "",
            availabilityZone: try text("availability_zone", "an availability zone") ?? "",
            mac: try text("mac", "a MAC address") ?? "", vpcID: try text("vpc_id", "a VPC id") ?? "",
            subnetID: try text("subnet_id", "a subnet id") ?? "", interfaceID: try text("interface_id", "an ENI id") ?? "",
            privateIP: try text("private_ip", "an IPv4 address") ?? "")
        if let v = section["max_attempts"] { aws.retry.maxAttempts = try integer(v, "\(key).max_attempts") }
        if let v = section["timeout"] { aws.timeoutSeconds = try duration(v, "\(key).timeout") }
        return aws
    }
}
