/*
 * Connection metrics: the classes of handshake failures. Pure: the close
 * reason is the text the handshake machine, the TLS layer or the
 * connection layer gave (see their hs_fail / conn_close calls), so the
 * class is read from it; what matches nothing known is a protocol error.
 */
#include "conn.h"

#include <string.h>

static const char *const hsf_names[CONN_HSF_N] = {
    [CONN_HSF_COOKIE] = "cookie",
    [CONN_HSF_NOT_ALLOWED] = "not_allowed",
    [CONN_HSF_TIMEOUT] = "timeout",
    [CONN_HSF_TLS] = "tls",
    [CONN_HSF_CLOSED] = "closed",
    [CONN_HSF_IO] = "io",
    [CONN_HSF_PROTOCOL] = "protocol",
};

const char *conn_hs_fail_name(enum conn_hs_fail f)
{
    return f < CONN_HSF_N ? hsf_names[f] : "protocol";
}

enum conn_hs_fail conn_hs_fail_class(const char *why)
{
    static const struct {
        const char *needle;
        enum conn_hs_fail cls;
    } rules[] = {
        {"cookie", CONN_HSF_COOKIE},
        {"not_allowed", CONN_HSF_NOT_ALLOWED},
        {"refused", CONN_HSF_NOT_ALLOWED},
        {"answered nok", CONN_HSF_NOT_ALLOWED},
        {"answered alive", CONN_HSF_NOT_ALLOWED},
        {"timed out", CONN_HSF_TIMEOUT},
        {"TLS", CONN_HSF_TLS},
        {"peer closed", CONN_HSF_CLOSED},
        {"closed the connection", CONN_HSF_CLOSED},
        {"reset by peer", CONN_HSF_IO},
        {"Broken pipe", CONN_HSF_IO},
        {"out of memory", CONN_HSF_IO},
    };
    if (!why)
        return CONN_HSF_PROTOCOL;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strstr(why, rules[i].needle))
            return rules[i].cls;
    return CONN_HSF_PROTOCOL;
}
