/// The configuration tunnat uses when none is given, embedded in the binary (`tunnat default-config` prints it).
/// Every key is written out with its default, so the file doubles as the reference for what can be set.
public enum DefaultConfiguration {
    public static let yaml = """
        # tunnat configuration. Durations take seconds (300) or units (300s, 5m, 2h4m).
        nat:
          # Sources that are translated. Any other source is dropped and counted, never translated.
          private_prefixes: [10.0.0.0/8]
          # External (pool) addresses: on AWS, secondary private IPs with Elastic IPs. Each private host always
          # gets the same one (RFC 4787 "paired" pooling). 198.18.0.0/15 is the benchmarking range (RFC 2544).
          pool: [198.18.0.1]
          # External ports for internal ports 1024-65535; internal ports 1-1023 map within 1-1023.
          port_range: 1024-65535
          # Who may send to a mapping: endpoint-independent (anyone), address-dependent (addresses the host sent
          # to), or address-and-port-dependent (address and port pairs the host sent to).
          filtering: endpoint-independent
          max_flows: 1048576
          # The most flows one private host may hold (a quarter of a pool address's ports): a number, or unlimited.
          max_flows_per_host: 16384
          # The most flows the private sources of one prefix (limit_prefix_length long) may hold together, so that
          # a host forging sources cannot take a pool address's ports: a number, or unlimited.
          max_flows_per_prefix: 32768
          limit_prefix_length: 24
          # The most flows that packets from outside may create in the whole table; they never count against a
          # host, and may be evicted to make room. Past it they still reach the host, leaving no state.
          max_inbound_flows: 131072
          # The most flows of one mapping that packets from outside may create (endpoint-independent filtering);
          # past it they still reach the host, leaving no state.
          max_inbound_flows_per_mapping: 16
          # A single UDP request and answer to one of these ports lives timeouts.udp_request_response (RFC 4787
          # REQ-5a); a socket that asks again after its answer is a stream with the full UDP timeout.
          request_response_ports: [53, 123]
          # Drop TCP/UDP/ICMP datagrams whose checksum fails, as the kernel's conntrack does by default.
          verify_checksums: true
          # Later fragments that arrive before their first fragment are held, at most this many at once.
          max_held_fragments: 64
          timeouts:
            tcp_established: 2h4m   # RFC 5382 REQ-5 minimum
            tcp_transitory: 4m      # RFC 5382 REQ-5 minimum
            tcp_unreplied: 30s      # picked up mid-stream (no SYN seen), until the other side answers
            udp: 5m                 # RFC 4787 REQ-5 recommendation
            udp_request_response: 30s  # a single exchange to a request_response_ports port
            icmp: 60s               # RFC 5508 REQ-2 minimum
            fragment: 30s           # Linux ipfrag_time
        # The live data plane (tunnat run).
        tun:
          name: tun0
          # Queues, one worker thread each (IFF_MULTI_QUEUE); 0 means one per core.
          queues: 0
          # virtio-net headers with checksum, TSO and USO offloads, as far as the kernel accepts them.
          offloads: true
          # Read the queues through io_uring (Linux 6.7 and later) where the kernel allows it, read(2) otherwise.
          io_uring: true
          # 0 keeps the kernel's default (1500).
          mtu: 0
          # Where translated packets go: packet (straight out of the egress interface through a packet socket, next
          # hops from the kernel's route and neighbour tables, back into the TUN while those are unknown), tun
          # (back into the TUN; the kernel forwards them a second time) or raw (a raw IP socket, which splits
          # GSO super-packets; the other two keep them whole).
          output: packet
          routing:
            # On start: 'ip rule from <private prefix> iif <interface> lookup <table>', 'default dev <tun>' and a
            # blackhole default in that table, and '<pool address>/32 dev <tun>' in main.
            install: true
            table: 100
            priority: 100
            # The interface private traffic arrives on. Empty: the interfaces of the main table's routes to the
            # private prefixes, found on start.
            interface: ""
            # The host forwards nothing tunnat did not translate (unsolicited packets to private addresses, sources
            # outside the private prefixes): a rule after tunnat's drops them. false: the kernel forwards them.
            fence_forwarding: true
            # On a clean stop: keep (the rules and the blackhole stay, so private traffic is dropped, never
            # forwarded untranslated) or remove (the host forwards it untranslated again).
            # 'tunnat routing remove' removes what keep left.
            on_stop: keep
        # 'tunnat status' asks the running data plane here.
        control_socket: /run/tunnat.sock
        # trace, debug, info, notice, warning, error or critical. A SIGHUP rereads it (and the failover section).
        log_level: info
        # text: one line per event, with a syslog priority prefix (<6>) when standard error is the journal; or json:
        # one JSON object per line.
        log_format: text
        # The figures of 'tunnat status' for monitoring.
        metrics:
          # Prometheus text exposition at http://ADDRESS:PORT/metrics; "" turns the endpoint off.
          listen: 127.0.0.1:9469
          # The same figures to CloudWatch with PutMetricData (needs cloudwatch:PutMetricData). Off unless set:
          # cloudwatch:
          #   namespace: tunnat
          #   interval: 60s
        # A one-line summary of the counters this often (0: never).
        stats_interval: 60s
        """
}
