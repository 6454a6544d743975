/* libFuzzer harness for the GGUF reader: open the bytes from memory, read every key, value and
 * tensor info through the getters, close (see fuzz_targets.h). Built by -DVKLLM_FUZZ=ON. */
#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_gguf_one(data, size); }
