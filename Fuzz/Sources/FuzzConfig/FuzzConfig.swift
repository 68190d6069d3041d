// libFuzzer target: the configuration reader (TunnatKit/Config/: Yams' YAML composer, ConfigReader and every
// section's parser and validation) through its two public entry points, `ConfigFile.parse` (a tunnat file) and
// `FailoverConfigFile.parse` (a tunnat file with a failover section, or an AWSnycast file as it is).
//
// Bad input from a person must give a `ConfigError`, never a crash. Checked besides "no crash": the error names
// the file it was given.
import CFuzzerDriver
import FuzzSupport
import TunnatKit

func check(_ error: ConfigError) {
    let line = error.description
    require(line.hasPrefix("fuzz.yaml"), "error does not name the file: \(line)")
}

/// The process's entry point (SwiftPM links `main` to it): libFuzzer's driver, with the function below.
@_cdecl("fuzz_config_main")
func entryPoint(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzz_run(argc, argv)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    // ConfigFile.load refuses what is not UTF-8 before parsing; so does this.
    guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
    do throws(ConfigError) { _ = try ConfigFile.parse(text, file: "fuzz.yaml") } catch { check(error) }
    do throws(ConfigError) { _ = try FailoverConfigFile.parse(text, file: "fuzz.yaml") } catch { check(error) }
    return 0
}
