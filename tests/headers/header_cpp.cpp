// Compiled as C++ with warnings as errors: the public header must stand alone
// and be usable from C++.
#include HEADER_UNDER_TEST

int main()
{
    return 0;
}
