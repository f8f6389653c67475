/* The entry point every fuzz target defines. Built with -fsanitize=fuzzer it
 * is driven by libFuzzer; built with replay_main.c it runs the committed
 * corpus as an ordinary test. It returns 0 and aborts when a check fails. */
#ifndef LF_FUZZ_TARGET_H
#define LF_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
