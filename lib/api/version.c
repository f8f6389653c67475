#include "lflex/lflex.h"

#define LF_STR2(x) #x
#define LF_STR(x) LF_STR2(x)

LFLEX_API const char *lflex_version(void)
{
    return LF_STR(LFLEX_VERSION_MAJOR) "." LF_STR(LFLEX_VERSION_MINOR) "." LF_STR(LFLEX_VERSION_PATCH);
}

LFLEX_API uint32_t lflex_version_number(void)
{
    return (uint32_t)LFLEX_VERSION_NUMBER;
}
