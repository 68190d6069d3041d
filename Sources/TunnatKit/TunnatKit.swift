/// TunnatKit: what the `tunnat` executable does, as a library the tests can call: the configuration file (YAML,
/// one file per section, one clear line per mistake), the live data plane's wiring (TUN workers, policy routing,
/// the control socket, replication and the route manager following the role), `replay`, and `status`.
/// The executable itself only parses its arguments and prints.
public enum TunnatKit {}
