import AWS
import Failover
import Health
import Replication
import SystemCalls
import Testing
import TunnatKit

/// AWSnycast's README example, as published except for one line: its `our_az` finder indents the second `config:`
/// four spaces deeper than `type:`, which no YAML parser accepts (PyYAML: "mapping values are not allowed here").
let awsnycastReadmeExample = """
    ---
    poll_time: 300 # How often to poll AWS route tables
    healthchecks:
        public:
            type: ping
            destination: 8.8.8.8
            rise: 2  # How many need to succeed in a row to be up
            fall: 10 # How many need to fail in a row to be down
            every: 1 # How often, in seconds
        localservice:
            type: tcp
            destination: 192.168.1.1
            rise: 2
            fall: 2
            every: 30
            config:
                send: HEAD / HTTP/1.0 # String to send (optional)
                expect: 200 OK        # Response to get back (optional)
                port: 80
    remote_healthchecks:
        service:
            type: tcp
            rise: 20 # Note we set these a lot higher than local healthchecks
            fall: 20
            every: 30
            config:
                send: HEAD / HTTP/1.0 # String to send (optional)
                expect: 200 OK        # Response to get back (optional)
                port: 80
    routetables:
        # This is our AZ, so always try to takeover routes always
        our_az:
            find:
                type: and
                config:
                  - type: by_tag
                    config:
                        key: az 
                        value: eu-west-1a
                  - type: by_tag
                    config:
                        key: type
                        value: private
            manage_routes:
              - cidr: 0.0.0.0/0     # NAT box, so manage the default route
                instance: SELF
                healthcheck: public
                never_delete: true   # Don't delete the default route if google goes down ;)
              - cidr: 192.168.1.1/32 # Manage an AWSnycast service on this machine
                instance: SELF
                healthcheck: localservice
                remote_healthcheck: service
        other_azs:
            find:
                no_results_ok: true # This allows you to deploy the same config in regions you only have 1 AZ
                type: and
                config:
                    filters:
                      - type: by_tag
                        not: true
                        config:
                            key: az
                            value: eu-west-1a
                      - type: by_tag
                        config:
                            key: type
                            value: private
            manage_routes:
              - cidr: 0.0.0.0/0
                if_unhealthy: true # Note this is what causes routes only to be taken over not present currently, or the instance with them has failed
                instance: SELF
              - cidr: 192.168.1.1/32
                if_unhealthy: true
                instance: SELF
                healthcheck: localservice
                remote_healthcheck: service
    """

@Suite struct FailoverConfigFileTests {
    @Test func awsnycastReadmeExampleMeansWhatItMeansThere() throws {
        let c = try FailoverConfigFile.parse(awsnycastReadmeExample, file: "awsnycast.yaml")
        #expect(c.pollTime == 300)
        let ping = try #require(c.healthChecks["public"])
        #expect(ping.kind == .ping && ping.destination == "8.8.8.8" && ping.rise == 2 && ping.fall == 10 && ping.every == 1)
        let tcp = try #require(c.healthChecks["localservice"])
        #expect(tcp.kind == .tcp && tcp.port == 80 && tcp.send == "HEAD / HTTP/1.0" && tcp.expect == "200 OK")
        #expect(tcp.rise == 2 && tcp.fall == 2 && tcp.every == 30 && !tcp.tls)
        let remote = try #require(c.remoteHealthChecks["service"])
        #expect(remote.destination.isEmpty && remote.rise == 20 && remote.port == 80)

        let ours = try #require(c.routeTables["our_az"])
        #expect(ours.find == .and([.byTag(key: "az", value: "eu-west-1a"), .byTag(key: "type", value: "private")]))
        #expect(!ours.noResultsOK)
        #expect(ours.manageRoutes.count == 2)
        #expect(ours.manageRoutes[0].cidr == "0.0.0.0/0" && ours.manageRoutes[0].instance == nil)
        #expect(ours.manageRoutes[0].healthCheck == "public" && ours.manageRoutes[0].neverDelete)
        #expect(!ours.manageRoutes[0].ifUnhealthy)
        #expect(ours.manageRoutes[1].remoteHealthCheck == "service" && ours.manageRoutes[1].healthCheck == "localservice")

        let others = try #require(c.routeTables["other_azs"])
        #expect(others.noResultsOK)
        #expect(others.find == .and([.not(.byTag(key: "az", value: "eu-west-1a")), .byTag(key: "type", value: "private")]))
        #expect(others.manageRoutes.map(\.ifUnhealthy) == [true, true])
        #expect(others.manageRoutes[0].healthCheck == nil)

        // The finders select what AWSnycast's would.
        let a = RouteTable(id: "rtb-a", vpcID: "vpc-1", tags: ["az": "eu-west-1a", "type": "private"])
        let b = RouteTable(id: "rtb-b", vpcID: "vpc-1", tags: ["az": "eu-west-1b", "type": "private"])
        let pub = RouteTable(id: "rtb-p", vpcID: "vpc-1", tags: ["az": "eu-west-1b", "type": "public"])
        #expect([a, b, pub].filter { ours.find.matches($0) }.map(\.id) == ["rtb-a"])
        #expect([a, b, pub].filter { others.find.matches($0) }.map(\.id) == ["rtb-b"])
    }

    @Test func aTunnatConfigCarriesTheSameSectionUnderFailover() throws {
        let text = """
            nat: {private_prefixes: [10.0.1.0/24], pool: 10.0.0.50}
            failover:
              poll_time: 10s
              hold_down: 1m
              pool_address: 10.0.0.50
              aws: {region: eu-west-1, endpoint: "http://127.0.0.1:5000", instance_id: i-0123, vpc_id: vpc-1, interface_id: eni-1, max_attempts: 3}
              route_tables:
                a:
                  find: {type: main}
                  manage_routes: [{cidr: 10.9.9.9, instance: i-0456, run_before_replace_route: [logger, taking over]}]
            """
        let config = try ConfigFile.parse(text, file: "t.yaml")
        let f = try #require(config.failover)
        #expect(f.pollTime == 10 && f.holdDown == 60 && f.poolAddresses == ["10.0.0.50"])
        #expect(f.aws.identity.region == "eu-west-1" && f.aws.endpoint == "http://127.0.0.1:5000")
        #expect(f.aws.identity.missingFields.isEmpty && f.aws.retry.maxAttempts == 3)
        let route = try #require(f.routeTables["a"]?.manageRoutes.first)
        #expect(route.cidr == "10.9.9.9/32" && route.instance == "i-0456")
        #expect(route.runBeforeReplaceRoute == ["logger", "taking over"])
        #expect(try FailoverConfigFile.parse(text, file: "t.yaml") == f)
    }

    /// What the CloudFormation stack's user data writes: the tables it was given, by id.
    @Test func byIDFindsExactlyTheTablesNamed() throws {
        let text = """
            routetables:
              private:
                find: {type: or, config: {filters: [{type: by_id, config: {route_table_id: rtb-1}}, {type: by_id, config: {route_table_id: rtb-3}}]}}
                manage_routes: [{cidr: 0.0.0.0/0}]
            """
        let spec = try #require(try FailoverConfigFile.parse(text, file: "t.yaml").routeTables["private"])
        let tables = ["rtb-1", "rtb-2", "rtb-3", "rtb-10"].map { RouteTable(id: $0, vpcID: "vpc-1", tags: [:]) }
        #expect(tables.filter { spec.find.matches($0) }.map(\.id) == ["rtb-1", "rtb-3"])
    }

    /// A tunnat configuration whose nat.pool is three secondary private IPs, with `failover` lines added.
    static func withPool(_ failover: String) -> String {
        "nat: {private_prefixes: [10.0.1.0/24], pool: [10.0.0.50, 10.0.0.51, 10.0.0.52]}\nfailover:\n\(failover)"
            + "  routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0}]}}\n"
    }

    static let poolAddressForms: [(String, [String])] = [
        ("  pool_addresses: [10.0.0.52, 10.0.0.50]\n", ["10.0.0.52", "10.0.0.50"]),
        ("  pool_addresses:\n    - 10.0.0.51\n", ["10.0.0.51"]),
        // `all` is nat.pool, in its order, expanded when the file is read.
        ("  pool_addresses: all\n", ["10.0.0.50", "10.0.0.51", "10.0.0.52"]),
        // The one-address form (AWSnycast-era files), and a lone address under the list key.
        ("  pool_address: 10.0.0.51\n", ["10.0.0.51"]),
        ("  pool_addresses: 10.0.0.51\n", ["10.0.0.51"]),
        ("", []),
    ]

    @Test(arguments: poolAddressForms) func poolAddressesAreAListAllOrTheOneAddressForm(_ lines: String, _ expected: [String]) throws {
        let config = try ConfigFile.parse(Self.withPool(lines), file: "t.yaml")
        #expect(config.failover?.poolAddresses == expected)
        // `tunnat routes --config` reads the same file to the same section.
        #expect(try FailoverConfigFile.parse(Self.withPool(lines), file: "t.yaml").poolAddresses == expected)
    }

    static let poolAddressMistakes: [(String, String)] = [
        ("  pool_address: 10.0.0.50\n  pool_addresses: [10.0.0.51]\n",
         "t.yaml:4: failover.pool_addresses: 'pool_address' and 'pool_addresses' both given; give one of them (pool_address: X is pool_addresses: [X])"),
        ("  pool_addresses: [10.0.0.50, 10.0.0.9]\n",
         "t.yaml:3: failover.pool_addresses: 10.0.0.9 is not in nat.pool (10.0.0.50, 10.0.0.51, 10.0.0.52): the NAT does not translate to it, so moving it to this instance would serve nothing; give addresses of nat.pool, or all"),
        ("  pool_address: 198.18.0.1\n",
         "t.yaml:3: failover.pool_address: 198.18.0.1 is not in nat.pool (10.0.0.50, 10.0.0.51, 10.0.0.52): the NAT does not translate to it, so moving it to this instance would serve nothing; give addresses of nat.pool, or all"),
        ("  pool_addresses:\n    - 10.0.0.50\n    - 10.0.0.51\n    - 10.0.0.050\n",
         "t.yaml:6: failover.pool_addresses: 10.0.0.050 is given twice; give each address once"),
        ("  pool_addresses: [10.0.0.50, eni-1]\n",
         "t.yaml:3: failover.pool_addresses: expected an IPv4 address, or all for every address of nat.pool, got 'eni-1'"),
        ("  pool_addresses: [all]\n",
         "t.yaml:3: failover.pool_addresses: expected an IPv4 address, or all for every address of nat.pool, got 'all'"),
        ("  pool_address: 10.0.0.256\n", "t.yaml:3: failover.pool_address: expected an IPv4 address, got '10.0.0.256'"),
        ("  pool_address: all\n",
         "t.yaml:3: failover.pool_address: expected one IPv4 address; for every address of nat.pool write pool_addresses: all"),
        ("  pool_addresses: []\n",
         "t.yaml:3: failover.pool_addresses: expected IPv4 addresses, or all, got an empty list; leave the key out to move none"),
        ("  pool_addresses: {a: 10.0.0.50}\n", "t.yaml:3: failover.pool_addresses: expected a list of IPv4 addresses, or all"),
    ]

    @Test(arguments: poolAddressMistakes) func aPoolAddressMistakeIsOneLineNamingTheKey(_ lines: String, _ message: String) {
        do {
            _ = try ConfigFile.parse(Self.withPool(lines), file: "t.yaml")
            Issue.record("accepted: \(lines)")
        } catch {
            #expect(error.description == message)
        }
    }

    /// An AWSnycast file has no nat section: its addresses cannot be checked against nat.pool, and `all` names nothing.
    @Test func anAWSnycastFileListsItsPoolAddressesAndCannotSayAll() throws {
        let routes = "routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0}]}}\n"
        let listed = try FailoverConfigFile.parse("pool_addresses: [10.0.0.50, 10.0.0.51]\n" + routes, file: "a.yaml")
        #expect(listed.poolAddresses == ["10.0.0.50", "10.0.0.51"])
        #expect(try FailoverConfigFile.parse("pool_address: 10.0.0.50\n" + routes, file: "a.yaml").poolAddresses == ["10.0.0.50"])
        do {
            _ = try FailoverConfigFile.parse("pool_addresses: all\n" + routes, file: "a.yaml")
            Issue.record("pool_addresses: all was accepted without a nat section")
        } catch {
            #expect(error.description
                    == "a.yaml:1: pool_addresses: 'all' means every address of nat.pool, and this file has no nat section; list the addresses")
        }
    }

    static let mistakes: [(String, String)] = [
        ("routetables: {a: {find: {type: by_tags, config: {key: a, value: b}}, manage_routes: [{cidr: 0.0.0.0/0}]}}",
         "t.yaml:1: routetables.a.find.type: expected one of by_tag, by_tag_regexp, by_id, and, or, main, subnet, has_route_to, got 'by_tags'"),
        ("routetables: {a: {find: {type: by_id, config: {route_table_id: subnet-1}}, manage_routes: [{cidr: 0.0.0.0/0}]}}",
         "t.yaml:1: routetables.a.find.config.route_table_id: expected a route table id (rtb-...), got 'subnet-1'"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0, healthcheck: nope}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].healthcheck: no health check named 'nope'; none is defined"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 10.0.0.1/8}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].cidr: expected an IPv4 prefix such as 0.0.0.0/0 (host bits clear), or an IPv6 one such as 64:ff9b::/96, got '10.0.0.1/8'"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: '64:ff9b::1/96'}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].cidr: expected an IPv6 prefix such as 64:ff9b::/96 (host bits clear), got '64:ff9b::1/96'"),
        ("healthchecks: {h: {type: tcp, destination: 10.0.0.1}}\nroutetables: {}",
         "t.yaml:1: healthchecks.h.config.port: missing; a tcp health check needs the port to connect to"),
        ("healthchecks: {h: {type: icmp, destination: 10.0.0.1}}\nroutetables: {}",
         "t.yaml:1: healthchecks.h.type: expected one of ping, tcp, http, https, command, got 'icmp'"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0, instance: me}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].instance: expected SELF or an instance id (i-...), got 'me'"),
        ("poll_time: 300\n", "t.yaml:1: routetables: missing; give the route tables to manage (routetables: NAME: {find, manage_routes})"),
        ("routetables: {a: {find: {type: by_tag_regexp, config: {key: a, regexp: '('}}, manage_routes: [{cidr: 0.0.0.0/0}]}}",
         "t.yaml:1: routetables.a.find.config.regexp: not a valid regular expression: '('"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0, never_delete: maybe}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].never_delete: expected true or false, got 'maybe'"),
        // Two spellings of one key given together: an error naming both, never "the last one wins".
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0}]}}\nroute_tables: {}",
         "t.yaml:2: route_tables: 'routetables' and 'route_tables' mean the same; give one of them"),
        ("healthchecks: {h: {type: tcp, destination: 10.0.0.1, config: {port: 1, tls: true, ssl: false}}}\nroutetables: {}",
         "t.yaml:1: healthchecks.h.config.ssl: 'tls' and 'ssl' mean the same; give one of them"),
        ("routetables: {a: {find: {type: main}, manage_routes: [{cidr: 0.0.0.0/0, run_before_add_route: [a], run_before_replace_route: [b]}]}}",
         "t.yaml:1: routetables.a.manage_routes[0].run_before_replace_route: 'run_before_add_route' and 'run_before_replace_route' mean the same; give one of them"),
        // Ranges are the domain types' rules, reported at the key's own line.
        ("healthchecks:\n  h:\n    type: ping\n    destination: 10.0.0.1\n    rise: 0\nroutetables: {}",
         "t.yaml:5: healthchecks.h.rise: expected a whole number from 1 to 1000, got 0"),
        ("aws:\n  max_attempts: 50\nroutetables: {}",
         "t.yaml:2: aws.max_attempts: expected a whole number from 1 to 20, got 50"),
    ]

    /// One boolean policy everywhere: YAML 1.1's words, as AWSnycast's parser took them.
    @Test(arguments: ["true", "yes", "on", "Y", "TRUE"]) func everyBooleanKeyReadsYAML11Words(_ word: String) throws {
        let text = "routetables: {a: {find: {type: main, no_results_ok: \(word)}, manage_routes: [{cidr: 0.0.0.0/0, never_delete: \(word)}]}}"
        let config = try FailoverConfigFile.parse(text, file: "t.yaml")
        #expect(config.routeTables["a"]?.noResultsOK == true && config.routeTables["a"]?.manageRoutes.first?.neverDelete == true)
        let tun = try ConfigFile.parse("nat: {private_prefixes: [10.0.0.0/8], pool: [198.18.0.1]}\ntun: {offloads: \(word == "true" ? "false" : "off")}\n",
                                       file: "t.yaml")
        #expect(!tun.tun.offloads)
    }

    @Test(arguments: mistakes) func aMistakeIsOneLineNamingTheKey(_ text: String, _ message: String) {
        #expect(throws: ConfigError.self) { try FailoverConfigFile.parse(text, file: "t.yaml") }
        do {
            _ = try FailoverConfigFile.parse(text, file: "t.yaml")
        } catch {
            #expect(error.description == message)
        }
    }
}
