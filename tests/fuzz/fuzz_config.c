/* Fuzz target for the YAML configuration reader. Every input is parsed with
 * a schema that has keys of every type, flat and in nested sections. A
 * failed parse must report LFLEX_EINVAL (or LFLEX_ENOMEM) with a located
 * message and leave the struct as it was; a successful one must emit YAML
 * that parses back to the identical struct and emits the identical text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"
#include "lf_error.h"
#include "tests/fuzz/fuzz_target.h"

typedef struct {
    int64_t i_small, i_any;
    double r_unit, r_any, r_pos;
    bool flag;
    int choice;
    char s_short[8];
    char s_long[48];
} fuzz_cfg;

static const char *const choices[] = { "alpha", "beta", "yes", "1", NULL };

static const lf_cfg_key fuzz_keys[] = {
    LF_CFG_KEY_INT(fuzz_cfg, i_small, "i_small", -3, 300, 7, "small range"),
    LF_CFG_KEY_STRING(fuzz_cfg, s_short, "a.s_short", "x", "tiny string"),
    LF_CFG_KEY_INT(fuzz_cfg, i_any, "a.i_any", (double)INT64_MIN, (double)INT64_MAX, 0, "any int64"),
    LF_CFG_KEY_REAL(fuzz_cfg, r_unit, "a.b.r_unit", 0, 1, 0.5, "unit interval"),
    LF_CFG_KEY_BOOL(fuzz_cfg, flag, "a.b.flag", 0, "a flag"),
    LF_CFG_KEY_ENUM(fuzz_cfg, choice, "c.choice", choices, 1, "awkward choices"),
    LF_CFG_KEY_REAL(fuzz_cfg, r_any, "c.r_any", -INFINITY, INFINITY, 0, "any real"),
    LF_CFG_KEY_REAL(fuzz_cfg, r_pos, "a.b.c.r_pos", 1e-300, 1e300, 1, "positive"),
    LF_CFG_KEY_STRING(fuzz_cfg, s_long, "s_long", "", "longer string"),
};
static const lf_cfg_schema fuzz_schema = { fuzz_keys, sizeof fuzz_keys / sizeof *fuzz_keys, "fuzz" };

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_config: %s (%s)\n", what, lflex_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_cfg a, before, b;
    memset(&a, 0, sizeof a);
    check(lf_config_schema_check(&fuzz_schema) == LFLEX_OK, "schema");
    check(lf_config_defaults(&fuzz_schema, &a) == LFLEX_OK, "defaults");
    before = a;
    int rc = lf_config_parse(&fuzz_schema, &a, sizeof a, (const char *)data, size, "<fuzz>");
    if (rc != LFLEX_OK) {
        check(rc == LFLEX_EINVAL || rc == LFLEX_ENOMEM, "unexpected status");
        check(rc != LFLEX_EINVAL || strncmp(lflex_last_error(), "<fuzz>:", 7) == 0, "message without location");
        check(memcmp(&a, &before, sizeof a) == 0, "struct changed by a failed parse");
        return 0;
    }
    char *y1 = NULL, *y2 = NULL;
    size_t n1 = 0, n2 = 0;
    check(lf_config_emit(&fuzz_schema, &a, &y1, &n1) == LFLEX_OK, "emit");
    memset(&b, 0, sizeof b);
    rc = lf_config_parse(&fuzz_schema, &b, sizeof b, y1, n1, "<emitted>");
    if (rc != LFLEX_OK)
        fprintf(stderr, "emitted:\n%s", y1);
    check(rc == LFLEX_OK, "emitted YAML does not parse");
    check(memcmp(&a, &b, sizeof a) == 0, "round trip changed the struct");
    check(lf_config_emit(&fuzz_schema, &b, &y2, &n2) == LFLEX_OK, "second emit");
    check(n1 == n2 && memcmp(y1, y2, n1) == 0, "emitted text differs on the second round");
    free(y1);
    free(y2);
    return 0;
}
