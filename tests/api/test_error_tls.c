/* The thread-local error record behind lflex_last_error(). */
#include <pthread.h>
#include <string.h>

#include "lf_error.h"
#include "tests/common/testutil.h"

static void *other_thread(void *arg)
{
    int *ok = arg;
    /* a new thread starts with no error, whatever the others did */
    ok[0] = strcmp(lflex_last_error(), "") == 0 && lflex_last_error_code() == 0;
    lf_error(LFLEX_EIO, "thread two: %s", "disk on fire");
    ok[1] = strcmp(lflex_last_error(), "thread two: disk on fire") == 0;
    return NULL;
}

START_TEST(test_per_thread)
{
    ck_assert_int_eq(lf_error(LFLEX_EINVAL, "key '%s' at line %d", "model.d_model", 3), LFLEX_EINVAL);
    pthread_t th;
    int ok[2] = {0, 0};
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, ok), 0);
    pthread_join(th, NULL);
    ck_assert(ok[0] && ok[1]);
    /* this thread's record is untouched by the other thread */
    ck_assert_str_eq(lflex_last_error(), "key 'model.d_model' at line 3");
    ck_assert_int_eq(lflex_last_error_code(), LFLEX_EINVAL);
    lflex_clear_error();
    ck_assert_str_eq(lflex_last_error(), "");
    ck_assert_int_eq(lflex_last_error_code(), 0);
}
END_TEST

START_TEST(test_long_messages_truncate)
{
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lf_error(LFLEX_EFORMAT, "%s", big);
    ck_assert_uint_eq(strlen(lflex_last_error()), LF_ERROR_MSG_MAX - 1);
    lf_error_prefix("%s", big); /* a prefix longer than the buffer */
    ck_assert_uint_eq(strlen(lflex_last_error()), LF_ERROR_MSG_MAX - 1);
    ck_assert_int_eq(lflex_last_error_code(), LFLEX_EFORMAT);
}
END_TEST

START_TEST(test_prefix_and_oom)
{
    lf_error(LFLEX_EINVAL, "token id 99 out of range");
    ck_assert_int_eq(lf_error_prefix("sequence %d, position %d", 2, 5), LFLEX_EINVAL);
    ck_assert_str_eq(lflex_last_error(), "sequence 2, position 5: token id 99 out of range");
    ck_assert_int_eq(lf_error_oom("lflex_model_new"), LFLEX_ENOMEM);
    ck_assert_str_eq(lflex_last_error(), "lflex_model_new: out of memory");
    ck_assert_int_eq(lf_error_oom(NULL), LFLEX_ENOMEM);
    ck_assert_ptr_nonnull(strstr(lflex_last_error(), "out of memory"));
}
END_TEST

Suite *lf_test_suite(void)
{
    Suite *s = suite_create("error_tls");
    TCase *tc = tcase_create("error_tls");
    tcase_add_test(tc, test_per_thread);
    tcase_add_test(tc, test_long_messages_truncate);
    tcase_add_test(tc, test_prefix_and_oom);
    suite_add_tcase(s, tc);
    return s;
}
