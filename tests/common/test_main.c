/* Shared main of the Check test programs: each program defines
 * lf_test_suite() and this runs it, printing TAP so that meson counts every
 * test case. */
#include <check.h>
#include <stdlib.h>

#include "tests/common/testutil.h"

int main(void)
{
    SRunner *sr = srunner_create(lf_test_suite());
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
