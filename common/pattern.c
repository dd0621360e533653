#include "common/pattern.h"

#include <string.h>

bool es_pattern_match(const char *pattern, const char *subject)
{
    const char *p = pattern, *s = subject;
    for (;;) {
        size_t plen = strcspn(p, ".");
        size_t slen = strcspn(s, ".");
        if (plen == 1 && p[0] == '>' && p[1] == '\0')
            return slen > 0 || s[0] == '.'; /* one or more tokens remain */
        bool tok_ok = (plen == 1 && p[0] == '*') ? slen > 0
                                                  : (plen == slen && memcmp(p, s, plen) == 0);
        if (!tok_ok)
            return false;
        p += plen;
        s += slen;
        if (*p == '\0' || *s == '\0')
            return *p == '\0' && *s == '\0';
        p++; /* both at '.' */
        s++;
    }
}

bool es_pattern_valid(const char *p)
{
    if (*p == '\0')
        return false;
    for (;;) {
        size_t len = strcspn(p, ".");
        if (len == 0)
            return false; /* empty token: leading, trailing or double dot */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= ' ')
                return false;
        if (len == 1 && p[0] == '>' && p[1] != '\0')
            return false; /* ">" only as the last token */
        p += len;
        if (*p == '\0')
            return true;
        p++;
    }
}
