/* Reading and writing the safetensors container of checkpoints without the
 * library (which has no call for it): resume rewrites a checkpoint's
 * configuration, export keeps only its weights. The format and the
 * library's additions (lflex.crc32) are in doc/checkpoints.md. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_st_read(const char *path, cli_st *f)
{
    memset(f, 0, sizeof *f);
    f->bytes = cli_read_file(path, &f->len);
    if (!f->bytes)
        return cli_fail("%s: %s", path, strerror(errno));
    uint64_t n = 0;
    for (int i = 0; i < 8 && f->len >= 8; i++)
        n |= (uint64_t)(unsigned char)f->bytes[i] << (8 * i);
    f->header = f->len >= 8 && n <= f->len - 8 ? json_loadb(f->bytes + 8, (size_t)n, 0, NULL) : NULL;
    f->meta = json_object_get(f->header, "__metadata__");
    if (!json_is_object(f->meta)) {
        cli_st_free(f);
        return cli_fail("%s: not a checkpoint's header", path);
    }
    f->data = f->bytes + 8 + n;
    f->data_len = f->len - 8 - (size_t)n;
    return 0;
}

void cli_st_free(cli_st *f)
{
    json_decref(f->header);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

/* CRC-32 (IEEE, reflected), that of zlib and of the library's files. */
static uint32_t crc32_update(uint32_t crc, const char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= (unsigned char)*p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

int cli_st_build(json_t *header, const char *data, size_t data_len, bool crc, cli_buf *out)
{
    json_t *md = json_object_get(header, "__metadata__");
    json_object_del(md, "lflex.writer");
    json_object_del(md, "lflex.crc32");
    if (crc && json_object_set_new(md, "lflex.crc32", json_string("00000000")))
        return cli_fail("out of memory");
    char *hs = json_dumps(header, JSON_COMPACT);
    if (!hs)
        return cli_fail("out of memory");
    size_t hl = strlen(hs), padded = (hl + 7) / 8 * 8; /* the data stays 8-byte aligned */
    unsigned char head[8];
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    out->len = 0;
    buf_add(out, (const char *)head, 8);
    buf_add(out, hs, hl);
    buf_add(out, "        ", padded - hl);
    buf_add(out, data, data_len);
    free(hs);
    if (crc) { /* the CRC of the file with its digits as zeros, put in their place */
        static const char key[] = "\"lflex.crc32\":\"";
        char *at = strstr(out->s + 8, key), hex[9];
        if (!at)
            return cli_fail("internal error: no checksum key in the header written");
        snprintf(hex, sizeof hex, "%08x", (unsigned)crc32_update(0, out->s, out->len));
        memcpy(at + sizeof key - 1, hex, 8);
    }
    return 0;
}

const char *cli_st_weights_only(const cli_st *f)
{
    return json_string_value(json_object_get(f->meta, "lflex.weights"));
}
