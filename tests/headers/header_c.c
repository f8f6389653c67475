/* Compiled as C99 with -pedantic-errors: the public header must stand alone. */
#include HEADER_UNDER_TEST

int main(void)
{
    return 0;
}
