/* Start-up configuration checks; see checks.h. */
#include "checks.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/log.h"

int checks_resolve_default(void *ud, const char *host)
{
    (void)ud;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (ai)
        freeaddrinfo(ai);
    return rc ? -ENOENT : 0;
}

/* Hosts checked once each, however many nodes share them. */
static int seen_before(char *const *list, size_t upto, const char *host)
{
    for (size_t i = 0; i < upto; i++) {
        const char *at = strchr(list[i], '@');
        if (at && !strcmp(at + 1, host))
            return 1;
    }
    return 0;
}

static int check_hosts(const char *self, const char *what, char *const *list, size_t n,
                       checks_resolve_fn resolve, void *ud)
{
    const char *self_at = strchr(self, '@');
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *at = strchr(list[i], '@');
        if (!at || (self_at && !strcmp(at + 1, self_at + 1)) || seen_before(list, i, at + 1))
            continue; /* our own host resolves: we registered on it */
        if (resolve(ud, at + 1)) {
            log_warn("%s %s: host '%s' does not resolve; connections to it will fail", what,
                     list[i], at + 1);
            found++;
        }
    }
    return found;
}

int checks_cluster(const char *self, char *const *masters, size_t nmasters,
                   char *const *replicas, size_t nreplicas, checks_resolve_fn resolve,
                   void *ud)
{
    int found = 0;
    int listed = 0;
    for (size_t i = 0; i < nmasters; i++)
        listed |= !strcmp(masters[i], self);
    for (size_t i = 0; i < nreplicas; i++)
        listed |= !strcmp(replicas[i], self);
    if (nmasters && !listed) {
        log_warn("this node (%s) is not in --masters (%zu listed) nor in --replicas: it "
                 "serves calls but is not part of the quorum it coordinates; a typo in "
                 "-sname or --masters?", self, nmasters);
        found++;
    }
    found += check_hosts(self, "master", masters, nmasters, resolve, ud);
    found += check_hosts(self, "replica", replicas, nreplicas, resolve, ud);
    return found;
}
