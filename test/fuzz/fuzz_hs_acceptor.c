/*
 * Fuzz target: the handshake state machine as acceptor (a peer dials
 * lockerd). Input: Challenge:32 | Cfg:8 | Stream from the initiator; see
 * fuzz_hs.h for the layout and the invariants checked.
 */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    fuzz_hs_run(data[4], get_u32(data), NULL, data + 5, size - 5);
    return 0;
}
