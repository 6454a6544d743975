/* libFuzzer harness for the model loader: GGUF bytes -> tokenizer -> hyperparameters -> model
 * (tensor shapes and types) -> the one-token forward graph, never run (see fuzz_targets.h).
 * Built by -DVKLLM_FUZZ=ON. */
#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_model_one(data, size); }
