/* Every configuration schema of the library is valid, and doc/config.md
 * holds exactly the reference generated from it, so the documentation of a
 * key can never drift from the code. To regenerate the reference sections:
 *   LFLEX_UPDATE_DOCS=1 build/tests/test_io_config_doc */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model_schema.h"
#include "io/sampler_schema.h"
#include "lf_error.h"
#include "tests/common/testutil.h"

extern const lf_cfg_schema lf_schedule_schema;

#define DOC_PATH LF_TEST_SOURCE_ROOT "/doc/config.md"

static const struct {
    const char *marker;
    const lf_cfg_schema *schema;
} sections[] = {
    {"model", &lf_model_schema},
    {"schedule", &lf_schedule_schema},
    {"sampler", &lf_sampler_schema},
};

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) == (size_t)n)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* The text between "<!-- BEGIN name -->\n" and "<!-- END name -->". */
static int find_section(const char *doc, const char *name, size_t *begin, size_t *end)
{
    char b[64], e[64];
    snprintf(b, sizeof b, "<!-- BEGIN %s -->\n", name);
    snprintf(e, sizeof e, "<!-- END %s -->", name);
    const char *pb = strstr(doc, b), *pe = strstr(doc, e);
    if (!pb || !pe || pe < pb)
        return -1;
    *begin = (size_t)(pb - doc) + strlen(b);
    *end = (size_t)(pe - doc);
    return 0;
}

START_TEST(test_schemas_valid)
{
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        ck_assert_msg(lf_config_schema_check(sections[i].schema) == 0, "%s", lflex_last_error());
}
END_TEST

START_TEST(test_doc_matches_schema)
{
    char *doc = read_all(DOC_PATH);
    ck_assert_msg(doc != NULL, "cannot read %s", DOC_PATH);
    int update = getenv("LFLEX_UPDATE_DOCS") != NULL;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        char *md;
        size_t len, b, e;
        ck_assert_int_eq(lf_config_doc_markdown(sections[i].schema, &md, &len), 0);
        /* the generated text without its top-level title (the page has its own) */
        char *body = strstr(md, "\n\n") ? strstr(md, "\n\n") + 2 : md;
        ck_assert_msg(find_section(doc, sections[i].marker, &b, &e) == 0, "doc/config.md lacks the markers of %s",
                      sections[i].marker);
        if (update) {
            size_t n_doc = strlen(doc), n_body = strlen(body);
            char *next = malloc(n_doc - (e - b) + n_body + 1);
            memcpy(next, doc, b);
            memcpy(next + b, body, n_body);
            strcpy(next + b + n_body, doc + e);
            free(doc);
            doc = next;
        } else {
            ck_assert_msg(e - b == strlen(body) && memcmp(doc + b, body, e - b) == 0,
                          "doc/config.md section %s differs from the schema; regenerate with "
                          "LFLEX_UPDATE_DOCS=1 build/tests/test_io_config_doc",
                          sections[i].marker);
        }
        free(md);
    }
    if (update) {
        FILE *f = fopen(DOC_PATH, "wb");
        ck_assert_ptr_nonnull(f);
        fputs(doc, f);
        fclose(f);
    }
    free(doc);
}
END_TEST

/* The prose states the nesting limit the reader enforces. */
START_TEST(test_doc_states_depth_limit)
{
    char *doc = read_all(DOC_PATH), want[64];
    ck_assert_ptr_nonnull(doc);
    snprintf(want, sizeof want, "nest at most %d deep", LF_CFG_DEPTH_MAX);
    ck_assert_msg(strstr(doc, want) != NULL, "doc/config.md does not say '%s'", want);
    free(doc);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("config_doc");
    TCase *tc = tcase_create("config_doc");
    tcase_add_test(tc, test_schemas_valid);
    tcase_add_test(tc, test_doc_matches_schema);
    tcase_add_test(tc, test_doc_states_depth_limit);
    suite_add_tcase(s, tc);
    return s;
}
