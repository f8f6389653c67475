/* Checkpoint container: safetensors files.
 *
 * The format (as defined by Hugging Face's safetensors) is an 8-byte
 * little-endian unsigned header length N, N bytes of JSON, then the data
 * section. The JSON object maps each tensor name to
 *   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data section, and may hold a
 * "__metadata__" object of string -> string. The tensors must cover the data
 * section exactly (no overlap, no hole, no trailing bytes). Tensor data is
 * little-endian. Python reads these files with `safetensors` and no liblflex.
 *
 * liblflex additions, all inside __metadata__ so other readers ignore them:
 *   "lflex.writer": "liblflex <version>"
 *   "lflex.crc32":  8 lowercase hex digits, the CRC-32 (IEEE) of the whole
 *                   file computed with these 8 digits replaced by '0'.
 * A file carrying either key must carry a valid checksum: a single damaged key
 * then cannot switch the check off. Files with neither key (written by other
 * tools, e.g. test fixtures written from Python) are read without the check.
 * To write a checksummed file elsewhere: write "lflex.crc32":"00000000" in
 * the header, compute zlib.crc32 over the file, put its hex digits in place.
 *
 * Reading validates everything and fails with LFLEX_EFORMAT and a message
 * naming the file, the byte offset and the tensor; nothing half-read is
 * returned. File errors are LFLEX_EIO, allocation failures LFLEX_ENOMEM.
 */
#ifndef LF_IO_SAFETENSORS_H
#define LF_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define LF_ST_MAX_DIMS 4
#define LF_ST_MAX_HEADER 100000000u /* same limit as the reference reader */
#define LF_ST_KEY_CRC "lflex.crc32"
#define LF_ST_KEY_WRITER "lflex.writer"

typedef enum { LF_ST_F32, LF_ST_F64, LF_ST_I32, LF_ST_I64, LF_ST_U8 } lf_st_dtype;

/* Bytes per element and the format's name ("F32", ...) of a dtype; 0 / NULL
 * for a value outside the enum. */
size_t lf_st_dtype_size(lf_st_dtype dtype);
const char *lf_st_dtype_name(lf_st_dtype dtype);

/* One tensor. For writing, `name`, `dtype`, `ndim`, `shape`, `data` (host
 * byte order) and `nbytes` (= product of shape x dtype size) are read and
 * `file_offset` is ignored. A 0-d tensor (ndim 0) holds one element.
 * As returned by a reader, `data` points into the reader's buffer in host
 * byte order; it is not necessarily aligned for the dtype (the data section
 * starts 8-byte aligned in memory, so a tensor is aligned when its offset in
 * the data section is a multiple of its dtype size): copy it with memcpy.
 * `file_offset` is where the data starts in the file (for messages). */
typedef struct lf_st_entry {
    const char *name;
    lf_st_dtype dtype;
    int ndim;
    int64_t shape[LF_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
    uint64_t file_offset;
} lf_st_entry;

typedef struct lf_st_meta {
    const char *key;
    const char *value;
} lf_st_meta;

/* Write a file atomically: a temporary file in the same directory
 * ("<path>.tmp-<pid>-<hex>", locked with flock while the save runs), fsync,
 * rename over `path`, fsync the directory, so that a crash at any point
 * leaves either the old file or the new one (and on failure, no temporary
 * file; a killed save leaves its temporary file, which the next save to
 * `path` removes: see lf_st_remove_stale_temps). Tensors are stored in the given order; "__metadata__" comes first
 * and holds `meta` followed by lflex.writer and lflex.crc32. The header is
 * padded with spaces so that the data section starts 8-byte aligned in the
 * file. Names and metadata must be valid UTF-8, unique, and not use the
 * reserved names ("__metadata__", lflex.writer, lflex.crc32); otherwise
 * LFLEX_EINVAL. `entries` / `meta` may be NULL when their count is 0. */
int lf_st_write(const char *path, const lf_st_entry *entries, size_t n,
                const lf_st_meta *meta, size_t n_meta);

/* Remove the temporary files that saves to `path` left behind when they
 * were killed: files in the same directory named like the writer's
 * temporary files for `path` that no running save holds locked (a save in
 * progress, in this process or another, is never touched). Best effort:
 * returns how many were removed, never fails, sets no error. lf_st_write
 * calls it first. */
int lf_st_remove_stale_temps(const char *path);

typedef struct lf_st_file lf_st_file;

/* Read and validate a whole file into one buffer owned by *out. */
int lf_st_read_file(lf_st_file **out, const char *path);
/* The same from memory; the bytes are copied, so `buf` may be freed after
 * the call. `name_for_errors` (may be NULL) names the buffer in messages. */
int lf_st_read_buffer(lf_st_file **out, const void *buf, size_t len, const char *name_for_errors);

/* Tensors in header order (the order the writer was given). */
size_t lf_st_count(const lf_st_file *f);
const lf_st_entry *lf_st_at(const lf_st_file *f, size_t i); /* NULL if i >= count */
const lf_st_entry *lf_st_find(const lf_st_file *f, const char *name); /* NULL if absent; O(log n) */
/* Metadata value for `key`, NULL if absent. lflex.writer and lflex.crc32 are
 * visible here too. */
const char *lf_st_meta_get(const lf_st_file *f, const char *key);
void lf_st_free(lf_st_file *f); /* accepts NULL */

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()): start with crc = 0 and
 * feed the bytes in any number of pieces. */
uint32_t lf_crc32_update(uint32_t crc, const void *data, size_t n);

#endif
