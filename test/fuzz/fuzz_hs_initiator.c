/*
 * Fuzz target: the handshake state machine as initiator (lockerd dials a
 * peer). Input: Challenge:32 | Cfg:8 | PeerNode NUL | Stream from the
 * acceptor; see fuzz_hs.h for the layout and the invariants checked. The
 * peer node is the name lockerd dialled (the acceptor's challenge must carry
 * exactly that name); without a NUL in the first 257 bytes after the header
 * there is no run.
 */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    const uint8_t *name = data + 5;
    size_t room = size - 5 < HS_NAME_MAX + 2 ? size - 5 : HS_NAME_MAX + 2;
    const uint8_t *nul = memchr(name, '\0', room);
    if (!nul)
        return 0;
    size_t used = (size_t)(nul - data) + 1;
    fuzz_hs_run(data[4], get_u32(data), (const char *)name, data + used, size - used);
    return 0;
}
