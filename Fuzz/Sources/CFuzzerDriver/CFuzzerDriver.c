#include "CFuzzerDriver.h"

#include <stddef.h>
#include <stdint.h>

// libFuzzer's (compiler-rt FuzzerInterface.h); the first is linked in by -sanitize=fuzzer, the second is the target's.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int fuzz_run(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
