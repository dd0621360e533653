/* common/cidr.c: address ranges of service.trusted_proxies. */
#include "common/cidr.h"

#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>

static es_cidr_t parse_ok(const char *s)
{
    es_cidr_t c;
    memset(&c, 0xaa, sizeof(c));
    cr_assert(es_cidr_parse(s, &c), "\"%s\" refused", s);
    return c;
}

static bool contains(const char *range, const char *ip)
{
    es_cidr_t c = parse_ok(range);
    return es_cidr_contains_any(&c, 1, ip);
}

Test(cidr, parses_ranges_and_single_addresses)
{
    es_cidr_t c = parse_ok("10.0.0.0/8");
    cr_assert_eq(c.family, AF_INET);
    cr_assert_eq(c.prefix, 8);
    cr_assert_eq(c.addr[0], 10);
    c = parse_ok("192.168.1.7");
    cr_assert_eq(c.family, AF_INET);
    cr_assert_eq(c.prefix, 32, "a bare IPv4 address is a /32");
    c = parse_ok("fd00::/8");
    cr_assert_eq(c.family, AF_INET6);
    cr_assert_eq(c.prefix, 8);
    cr_assert_eq(c.addr[0], 0xfd);
    c = parse_ok("::1");
    cr_assert_eq(c.family, AF_INET6);
    cr_assert_eq(c.prefix, 128, "a bare IPv6 address is a /128");
    c = parse_ok("0.0.0.0/0");
    cr_assert_eq(c.prefix, 0);
    c = parse_ok("2001:db8::/32");
    cr_assert_eq(c.prefix, 32);
    c = parse_ok("10.0.0.0/32");
    cr_assert_eq(c.prefix, 32);
    c = parse_ok("::/128");
    cr_assert_eq(c.prefix, 128);
}

Test(cidr, refuses_what_is_not_a_range)
{
    static const char *const bad[] = {
        "",
        "localhost",
        "10.0.0",
        "10.0.0.256",
        "10.0.0.0/33",
        "fd00::/129",
        "10.0.0.0/",
        "10.0.0.0/8x",
        "10.0.0.0/x",
        "10.0.0.0/8/8",
        " 10.0.0.1",
        "10.0.0.1 ",
        "::g",
        "1.2.3.4/99999999999999999999",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        es_cidr_t c;
        cr_assert(!es_cidr_parse(bad[i], &c), "\"%s\" accepted", bad[i]);
    }
}

/* A negative prefix length is not a range: it must not silently become a
 * single address (/32 or /128). */
Test(cidr, refuses_negative_prefix)
{
    static const char *const bad[] = {"10.0.0.0/-1", "10.0.0.0/-8", "fd00::/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        es_cidr_t c;
        memset(&c, 0, sizeof(c));
        bool ok = es_cidr_parse(bad[i], &c);
        cr_expect(!ok, "\"%s\" accepted (as a /%d)", bad[i], c.prefix);
    }
}

Test(cidr, ipv4_membership)
{
    cr_assert(contains("10.0.0.0/8", "10.0.0.0"));
    cr_assert(contains("10.0.0.0/8", "10.255.255.255"));
    cr_assert(!contains("10.0.0.0/8", "11.0.0.0"));
    cr_assert(!contains("10.0.0.0/8", "9.255.255.255"));
    cr_assert(contains("127.0.0.1", "127.0.0.1"));
    cr_assert(!contains("127.0.0.1", "127.0.0.2"));
    /* prefixes that do not end on a byte */
    cr_assert(contains("192.168.0.0/23", "192.168.1.255"));
    cr_assert(!contains("192.168.0.0/23", "192.168.2.0"));
    cr_assert(contains("172.16.0.0/12", "172.31.255.255"));
    cr_assert(!contains("172.16.0.0/12", "172.32.0.0"));
    cr_assert(contains("100.64.0.0/10", "100.127.0.1"));
    cr_assert(!contains("100.64.0.0/10", "100.128.0.1"));
    /* host bits in the range do not matter */
    cr_assert(contains("10.1.2.3/8", "10.200.0.1"));
    cr_assert(contains("0.0.0.0/0", "203.0.113.9"));
    /* an IPv4 range never holds an IPv6 address */
    cr_assert(!contains("0.0.0.0/0", "2001:db8::1"));
}

Test(cidr, ipv6_membership)
{
    cr_assert(contains("fd00::/8", "fd12:3456::1"));
    cr_assert(!contains("fd00::/8", "fe80::1"));
    cr_assert(contains("::1", "::1"));
    cr_assert(contains("::1", "0:0:0:0:0:0:0:1"), "the same address written another way");
    cr_assert(!contains("::1", "::2"));
    cr_assert(contains("2001:db8::/33", "2001:db8:7fff::1"));
    cr_assert(!contains("2001:db8::/33", "2001:db8:8000::1"));
    cr_assert(contains("::/0", "2001:db8::1"));
    cr_assert(!contains("::/0", "10.0.0.1"), "an IPv6 range never holds an IPv4 address");
}

/* A peer on a dual-stack socket shows as ::ffff:a.b.c.d: it matches the
 * IPv4 ranges. */
Test(cidr, ipv4_mapped_matches_ipv4_ranges)
{
    cr_assert(contains("127.0.0.1", "::ffff:127.0.0.1"));
    cr_assert(contains("10.0.0.0/8", "::ffff:10.9.8.7"));
    cr_assert(!contains("10.0.0.0/8", "::ffff:11.9.8.7"));
}

Test(cidr, several_ranges_and_bad_input)
{
    es_cidr_t r[3];
    cr_assert(es_cidr_parse("10.0.0.0/8", &r[0]));
    cr_assert(es_cidr_parse("192.168.0.0/16", &r[1]));
    cr_assert(es_cidr_parse("fd00::/8", &r[2]));
    cr_assert(es_cidr_contains_any(r, 3, "192.168.44.1"));
    cr_assert(es_cidr_contains_any(r, 3, "fdff::1"));
    cr_assert(es_cidr_contains_any(r, 3, "10.0.0.1"));
    cr_assert(!es_cidr_contains_any(r, 3, "8.8.8.8"));
    cr_assert(!es_cidr_contains_any(r, 0, "10.0.0.1"), "no range holds nothing");
    cr_assert(!es_cidr_contains_any(r, 3, ""));
    cr_assert(!es_cidr_contains_any(r, 3, "not-an-ip"));
    cr_assert(!es_cidr_contains_any(r, 3, "10.0.0.1:8080"));
    cr_assert(!es_cidr_contains_any(r, 3, "10.0.0.0/8"), "a range is not an address");
}
