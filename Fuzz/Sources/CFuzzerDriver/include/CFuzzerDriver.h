// The entry point of a fuzz target. SwiftPM (6.3 on Linux) builds every executable target with its `main` renamed
// to `<module>_main` and links it with `--defsym main=<module>_main`, so libFuzzer's own `main` is never used and
// the link fails for want of that symbol. Each target defines `<module>_main` (`@_cdecl`) and calls this, which
// hands libFuzzer's driver the target's `LLVMFuzzerTestOneInput`: the same as libFuzzer's `main` does.
#ifndef C_FUZZER_DRIVER_H
#define C_FUZZER_DRIVER_H

int fuzz_run(int argc, char **argv);

#endif
