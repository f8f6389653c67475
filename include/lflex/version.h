/* liblflex version numbers. meson reads LFLEX_VERSION_* from this file, so
 * this is the single place where the version is written down. */
#ifndef LFLEX_VERSION_H
#define LFLEX_VERSION_H

#define LFLEX_VERSION_MAJOR 0
#define LFLEX_VERSION_MINOR 1
#define LFLEX_VERSION_PATCH 0

/** Packed version: (major << 16) | (minor << 8) | patch. */
#define LFLEX_VERSION_NUMBER \
    ((LFLEX_VERSION_MAJOR << 16) | (LFLEX_VERSION_MINOR << 8) | LFLEX_VERSION_PATCH)

#endif /* LFLEX_VERSION_H */
