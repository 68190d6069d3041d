/// TunnatKit: what the `tunnat` executable does, as a library the tests can call: the configuration file
/// (YAML, with one clear line per mistake) and the commands (`replay` so far). The executable itself only parses
/// its arguments and prints.
public enum TunnatKit {}
