/* libFuzzer target: a JWKS document as the identity provider's endpoint serves it
 * (us_jwks_set_parse, client.token.jwks_public_endpoint), and the lookup of a token's
 * kid in the set it gives.
 *
 * Input: one byte n (taken mod 64), then n bytes of kid, then the document.
 * Checked besides the sanitizers: a document is refused with a reason or gives a set;
 * the set's usable and skipped counts stay within the key bound; a skipped key comes with
 * a reason; the lookup of any kid returns a key of the set or nothing, and the same key
 * twice. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t kid_len = data[0] % 64;
    if (size < 1 + kid_len)
        return 0;
    const char *kid = (const char *)data + 1;
    const char *doc = kid + kid_len;
    size_t doc_len = size - 1 - kid_len;

    char err[256] = "";
    us_jwks_set *set = us_jwks_set_parse(doc, doc_len, err, sizeof err);
    if (!set) {
        if (!err[0]) {
            fprintf(stderr, "fuzz_jwks: a document refused without a reason\n");
            abort();
        }
        return 0;
    }
    size_t usable = us_jwks_set_count(set), skipped = us_jwks_set_skipped(set);
    if (usable + skipped > US_JWKS_MAX_KEYS) {
        fprintf(stderr, "fuzz_jwks: %zu usable + %zu skipped keys, over %d\n", usable, skipped,
                US_JWKS_MAX_KEYS);
        abort();
    }
    const char *why = us_jwks_set_skip_reason(set);
    if (!why || (skipped > 0) != (why[0] != '\0')) {
        fprintf(stderr, "fuzz_jwks: %zu keys skipped, reason \"%s\"\n", skipped, why ? why : "(null)");
        abort();
    }
    const us_jwt_key *k = us_jwks_set_find(set, kid, kid_len);
    if (k != us_jwks_set_find(set, kid, kid_len)) {
        fprintf(stderr, "fuzz_jwks: the same kid found two keys\n");
        abort();
    }
    if (k && usable == 0) {
        fprintf(stderr, "fuzz_jwks: a key found in a set without usable keys\n");
        abort();
    }
    us_jwks_set_free(set);
    return 0;
}
