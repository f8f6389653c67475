/* The error model of the public API, through the shared library. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lflex/lflex.h>

#include "tests/common/testutil.h"

START_TEST(test_last_error_initially_empty)
{
    ck_assert_ptr_nonnull(lflex_last_error());
    ck_assert_str_eq(lflex_last_error(), "");
    ck_assert_int_eq(lflex_last_error_code(), 0);
}
END_TEST

START_TEST(test_strerror_every_code)
{
    const int codes[] = {LFLEX_OK, LFLEX_EINVAL, LFLEX_ENOMEM, LFLEX_EIO, LFLEX_EFORMAT, LFLEX_EVERSION,
                         LFLEX_ENUMERIC, LFLEX_ECANCELED, LFLEX_ESTATE, LFLEX_ENOTIMPL, LFLEX_EINTERNAL};
    const char *unknown = lflex_strerror(-9999);
    ck_assert_ptr_nonnull(unknown);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = lflex_strerror(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_gt(strlen(s), 3);
        ck_assert_str_ne(s, unknown);
        for (size_t j = 0; j < i; j++) /* every code has its own text */
            ck_assert_str_ne(s, lflex_strerror(codes[j]));
    }
    ck_assert_str_eq(lflex_strerror(1), unknown);
    ck_assert_str_eq(lflex_strerror(INT32_MIN), unknown);
}
END_TEST

/* The values of the codes are part of the ABI. */
START_TEST(test_code_values_fixed)
{
    ck_assert_int_eq(LFLEX_OK, 0);
    ck_assert_int_eq(LFLEX_EINVAL, -1);
    ck_assert_int_eq(LFLEX_ENOMEM, -2);
    ck_assert_int_eq(LFLEX_EIO, -3);
    ck_assert_int_eq(LFLEX_EFORMAT, -4);
    ck_assert_int_eq(LFLEX_EVERSION, -5);
    ck_assert_int_eq(LFLEX_ENUMERIC, -6);
    ck_assert_int_eq(LFLEX_ECANCELED, -7);
    ck_assert_int_eq(LFLEX_ESTATE, -8);
    ck_assert_int_eq(LFLEX_ENOTIMPL, -9);
    ck_assert_int_eq(LFLEX_EINTERNAL, -10);
}
END_TEST

START_TEST(test_version)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", LFLEX_VERSION_MAJOR, LFLEX_VERSION_MINOR, LFLEX_VERSION_PATCH);
    ck_assert_str_eq(lflex_version(), expect);
    ck_assert_uint_eq(lflex_version_number(), (uint32_t)LFLEX_VERSION_NUMBER);
    ck_assert_uint_eq(lflex_version_number() >> 16, LFLEX_VERSION_MAJOR);
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_last_error_initially_empty);
    tcase_add_test(tc, test_strerror_every_code);
    tcase_add_test(tc, test_code_values_fixed);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return s;
}
