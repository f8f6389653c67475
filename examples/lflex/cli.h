/* The lflex command-line program (doc/cli.md). Public API only. */
#ifndef LFLEX_CLI_H
#define LFLEX_CLI_H

#include <lflex/lflex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors and small helpers (util.c) ---- */

/* "lflex: message" on stderr; returns 1 (the exit status of a failure). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with the library's last error appended. */
int cli_fail_lib(const char *what);
double cli_now(void);
char *cli_read_file(const char *path, size_t *len);
/* mkdir -p: a directory and every missing parent. */
int cli_make_dir(const char *path);
/* A path relative to the directory of `base` (unless absolute). malloc'd. */
char *cli_path_near(const char *base, const char *path);
uint64_t cli_rand(uint64_t *state);

/* A growable text buffer. */
typedef struct {
    char *s;
    size_t len, cap;
} cli_buf;
void buf_add(cli_buf *b, const char *s, size_t n);
void buf_printf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(cli_buf *b);

/* ---- progress on standard error (util.c) ---- */

/* "m:ss" or "h:mm:ss" of a time left in seconds ("--:--" when unknown). */
void cli_format_eta(char *buf, size_t cap, double s);

/* A progress line with a bar, the rate and the time left, redrawn on
 * standard error at most 10 times a second; only when standard error is a
 * terminal and not quiet. */
typedef struct {
    bool on, drawn, stdout_tty;
    double t0, last;
    uint64_t total;
    const char *unit;           /* what is counted, e.g. "seq" */
} cli_progress;
void cli_progress_begin(cli_progress *p, bool quiet, uint64_t total, const char *unit);
/* `done` of total are done (drawn at once when all are). */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Erase the line before writing on standard output when that is a
 * terminal too; the next update draws it again. */
void cli_progress_clear(cli_progress *p);
/* Erase the line for good. */
void cli_progress_end(cli_progress *p);

/* ---- JSON output of --json (util.c), written with jansson ---- */

typedef struct json_t json_t; /* <jansson.h> */
/* A number, or null when it is not finite (JSON has no NaN). */
json_t *cli_json_real(double v);
/* A JSON string of a text; bytes that are not UTF-8 become '?' (NULL when
 * out of memory). */
json_t *cli_json_string(const char *s);
/* Decoded text of tokens as a JSON string (NULL when out of memory). */
json_t *cli_json_text(const lflex_model_t *m, const int32_t *ids, size_t n);
/* Set key of object `o` to `v` (stolen); nonzero when either is NULL. */
int cli_json_set(json_t *o, const char *key, json_t *v);
/* Write `j` (stolen) to standard output on one line (JSON lines) or
 * indented, then a newline; 1 with an error line after a failure. */
int cli_json_print(json_t *j, bool one_line);

/* ---- options of the commands (opts.c) ---- */

struct option; /* <getopt.h> */

/* One option: --name, or --name VALUE when `arg` (the value's name in
 * --help) is set. Texts of --help are wrapped at 79 columns ("\n" in them
 * is a space). */
typedef struct {
    const char *name, *arg, *help;
    int id;                     /* what cli_opts_next returns for it (>= 0) */
} cli_opt;

/* A command and its --help: usage line, paragraph, options, examples. */
typedef struct {
    const char *name;           /* "sample" */
    const char *args;           /* after the name on the usage line */
    const char *about;          /* one paragraph */
    const char *example;        /* command lines after "lflex ", "\n" between them */
    const cli_opt *opts;        /* ended by an entry with name NULL */
} cli_command;

typedef struct {
    const cli_command *cmd;
    struct option *lo;
    int argc, rest, status;
    char **argv;
} cli_opts;

enum { CLI_OPT_END = -1, CLI_OPT_ARG = -2, CLI_OPT_EXIT = -3 };

/* Read argv[1..] (argv[0] is the command's name). cli_opts_next gives the
 * id of the next option with its value in *arg (never empty: an empty
 * value is an error), CLI_OPT_ARG with a positional argument (after "--"
 * every argument is one), CLI_OPT_END, or CLI_OPT_EXIT when the command
 * must exit with p->status: 0 after --help (printed on standard output),
 * 2 after an unknown option, a missing or an empty value (an error line
 * and the usage on standard error). */
int cli_opts_begin(cli_opts *p, const cli_command *c, int argc, char **argv);
int cli_opts_next(cli_opts *p, const char **arg);
void cli_opts_end(cli_opts *p);
void cli_help(FILE *f, const cli_command *c);
/* "lflex: NAME: message" and the usage on standard error; returns 2. */
int cli_usage_error(const cli_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A positional argument into the first of the n slots still NULL; 0, or 2
 * (a usage error) when every slot is taken. */
int cli_opts_positional(const cli_command *c, const char *arg, const char **slots[], int n);
/* Option values: an error naming the option (and returning 2) for an
 * empty value, text that is not wholly the number, or a number outside
 * [lo, hi] ([lo, hi) when below_hi). */
int cli_opt_int(const char *opt, const char *arg, int64_t lo, int64_t hi, int64_t *out);
int cli_opt_real(const char *opt, const char *arg, double lo, double hi, bool below_hi, double *out);
/* A value as a one-line message may show it: control characters escaped,
 * a long value cut. Returns buf. */
const char *cli_shown(const char *s, char *buf, size_t cap);
/* The index of arg in the NULL-terminated choices. */
int cli_opt_choice(const char *opt, const char *arg, const char *const *choices, int *out);

/* ---- the configuration file of `lflex train` (config.c) ---- */

/* Deepest nesting of mappings and sequences read, the library's limit
 * (doc/config.md): deeper input is refused as the parser reaches it. */
#define CLI_YAML_DEPTH_MAX 64

typedef struct {
    char *key, *value;
    int line, col;
} cli_kv;

typedef struct {
    cli_kv *items;
    int n;
} cli_section;

typedef struct {
    char *model_yaml;           /* the file with data/run/sample and the keys of --set blanked out
                                   (lines and columns unchanged), then the model keys of --set */
    size_t model_len;
    size_t file_lines;          /* lines of the file: model_yaml's later lines are the --set values */
    cli_buf sample_yaml;        /* the sample section as sampler YAML ("" when absent) */
    cli_section data, run, sample;
    cli_section model;          /* the file's model keys with a scalar value, by dotted path (not --set) */
    char tokenizer[16];         /* vocab.tokenizer as written ("" when absent) */
    bool has_vocab;             /* vocab.tokens or vocab.size given */
} cli_config;

/* Split a configuration file; overrides are "section.key=value". */
int cli_config_read(cli_config *c, const char *path, char **overrides, int n_overrides);
/* The same from text (`path` names it in messages). */
int cli_config_parse(cli_config *c, const char *path, const char *text, size_t len, char **overrides,
                     int n_overrides);
void cli_config_free(cli_config *c);
/* The config.yaml that lflex train writes in a run's directory, next to
 * `near` (a file of the run): 1 when read into c, 0 when there is none,
 * -1 after an error line. *path gets its path (malloc'd, to free). */
int cli_run_config(const char *near, cli_config *c, char **path);
/* An error line for the library's message about c->model_yaml (parsed as
 * "<config>"): its place is the file's `path`:LINE:COL, or --set for a
 * line after the file's. Returns 1. */
int cli_config_fail(const cli_config *c, const char *path);
/* Typed getters of data/run keys; a key of the wrong type is an error that
 * names the file, line and column. Unknown keys are reported by check. */
int cli_get_int(const cli_section *s, const char *sec, const char *key, long lo, long hi, long def, long *out,
                const char *file);
int cli_get_str(const cli_section *s, const char *key, const char **out);
int cli_get_bool(const cli_section *s, const char *sec, const char *key, bool def, bool *out, const char *file);
int cli_check_keys(const cli_section *s, const char *sec, const char *const *known, const char *file);
/* Set a key (its place becomes line 0: given on the command line). */
void cli_section_set(cli_section *s, const char *key, const char *value);
void cli_section_free(cli_section *s);
/* A section as a YAML mapping of scalars, written by libyaml's emitter,
 * which quotes what needs it: no value can add a key. */
int cli_section_yaml(const cli_section *s, cli_buf *out);
/* Sections as a YAML mapping of them ("name:" and the section's keys
 * indented), the same way. */
int cli_sections_yaml(const char *const *names, const cli_section *const *secs, int n, cli_buf *out);

/* ---- data files (data.c) ---- */

/* The lines of a text in memory (text[len] is NUL, as cli_read_file
 * leaves it). A line ends at "\n", "\r\n" or a lone "\r"; the break is
 * not part of it and its first byte is overwritten with NUL. */
typedef struct {
    char *text;
    size_t len, pos;
    size_t line_no;             /* of the line last returned, from 1 */
} cli_lines;
bool cli_next_line(cli_lines *it, char **line, size_t *n);
/* Whether the model's tokenizer reads the reserved spellings <pad>, <mask>,
 * <bos>, <eos> as those tokens (the words tokenizer does; the character
 * tokenizer reads characters). */
bool cli_reads_reserved(const lflex_model_t *m);
/* What a line of a data or prompt file may not hold: a NUL byte, or (when
 * `reserved`) a word spelt as a reserved token. NULL when the line is
 * fine, else the reason (in buf) and *col its column (1-based, in
 * characters). */
const char *cli_line_problem(const char *line, size_t n, bool reserved, size_t *col, char *buf, size_t cap);

typedef struct {
    int32_t *tokens;            /* sequences concatenated */
    uint8_t *fixed;
    size_t *offsets;            /* [n + 1] */
    size_t *target_start;       /* [n]: where the target begins in its sequence */
    size_t n, cap_tok, cap_seq;
    size_t skipped;
    bool conditional;           /* some line had a prompt */
} cli_data;

/* Every distinct token of a data file (targets and prompts), sorted, as
 * vocab.tokens text for the tokenizer ("char" or "words"). */
int cli_vocab_from_file(const char *path, const char *tokenizer, char **tokens);
/* Load a data file with a model's vocabulary. */
int cli_data_load(cli_data *d, const lflex_model_t *m, const char *path, bool skip_bad);
void cli_data_free(cli_data *d);
/* Append one example (prompt may be NULL). */
int cli_data_add(cli_data *d, const int32_t *prompt, size_t n_prompt, const int32_t *target, size_t n_target);
/* Encode text, splitting at markers "[GAP]" (the next token gets an open
 * gap) and "[MASK]" (a MASK token); used by sample, rates. */
int cli_encode_marked(const lflex_model_t *m, const char *text, int32_t *ids, uint8_t *open, size_t cap,
                      size_t *n);

/* ---- generation helpers shared by sample, eval, train, demo (gen.c) ---- */

typedef struct {
    double exact, token_acc;
    size_t n;
} cli_match;

/* Generate the target of the first `n` conditional examples of `d` and
 * compare with the references. Samples of the first `show` examples are
 * printed to `out` (may be NULL). `prog` (may be NULL) shows the sampler's
 * steps. */
int cli_exact_match(lflex_model_t *m, const char *sampler_yaml, size_t yaml_len, const cli_data *d, size_t n,
                    FILE *out, size_t show, cli_match *res, cli_progress *prog);
/* One clean example, "TARGET" or "PROMPT<TAB>TARGET", appended to `d` as
 * the training data has it (order, plot). */
int cli_example(const lflex_model_t *m, const char *text, cli_data *d);
/* Print a table of the learned order of a sequence. */
int cli_print_order(FILE *f, const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n);
/* The same as a JSON object (*out): fixed_tokens, learned_order, tokens
 * [{pos, token, b_in, expected_t_in, place, tied}] and order (the tokens
 * of each place, first place first). */
int cli_order_json(const lflex_model_t *m, const int32_t *z, const uint8_t *fixed, size_t n, json_t **out);

/* ---- resuming `lflex train` (resume.c) ---- */

/* Where the order of training examples stands when a checkpoint is saved:
 * what the loop needs to draw the same batches after --resume. Each pass
 * over the data is a shuffle of the examples drawn with a generator
 * seeded by run.seed; `position` examples of the current one are used. */
typedef struct {
    int64_t step;               /* the checkpoint's step */
    int64_t seed, batch;        /* run.seed and run.batch_size of the run */
    uint64_t examples;          /* training examples */
    uint64_t data_hash;         /* cli_data_hash of them */
    uint64_t epoch;             /* shuffles drawn (0: none yet) */
    uint64_t position;          /* examples of the last shuffle used */
    uint64_t epoch_rng;         /* the generator's state before the last shuffle */
} cli_order;

/* Write a file atomically: PATH.tmp, fsync, rename, fsync the directory. */
int cli_write_atomic(const char *path, const char *data, size_t len);
/* The file of a checkpoint's batch order: "CKPT.data-order.json" (malloc'd). */
char *cli_order_path(const char *ckpt);
/* Write states (those of the last checkpoint and of the one about to be
 * saved) atomically next to ckpt. */
int cli_order_write(const char *ckpt, const cli_order *states, int n);
/* The state saved for `step` next to ckpt: 1 when found, else 0 and why
 * not in `why`. */
int cli_order_read(const char *ckpt, int64_t step, cli_order *out, char *why, size_t cap);
/* Keep the records of a log.jsonl up to `step`, those of the checkpoint a
 * run resumes from: the resumed run writes the later ones again. The file
 * is rewritten atomically when it has later records, or a line that is
 * not a record (one cut short by a crash); *dropped gets their number. A
 * missing file is fine. */
int cli_log_keep_until(const char *path, int64_t step, size_t *dropped);
/* Load a checkpoint to resume training, with the model keys of `overrides`
 * ("train.lr=1e-4": keys a resumed run may change) applied to its
 * configuration: through a copy of the file with the new configuration,
 * written in tmp_dir, loaded and removed (the library has no call that
 * changes the configuration of a model). */
int cli_load_resumed(lflex_model_t **out, const char *ckpt, char **overrides, int n, const char *tmp_dir);
/* A fingerprint of the training examples (tokens, fixed flags, lengths). */
uint64_t cli_data_hash(const cli_data *d);

/* ---- data-parallel training under mpirun (dist.c) ---- */

/* This process in a run of `size` processes (1 and rank 0 when not
 * started by an MPI launcher, or built without -Dmpi). */
typedef struct {
    int rank, size;
    void *group;                /* lflex_mpi_t, NULL for one process */
} cli_dist;
/* Join the processes of the MPI job when started by a launcher. */
int cli_dist_begin(cli_dist *d);
/* Sum the model's gradients over the processes. */
int cli_dist_attach(cli_dist *d, lflex_model_t *m);
/* A training step on the whole batch: this process's shard of it, summed
 * over the processes; a plain step for one process. */
int cli_dist_step(cli_dist *d, lflex_model_t *m, const int32_t *tokens, const uint8_t *fixed, const size_t *offsets,
                  size_t n_seq, lflex_train_stats *stats);
/* The message of a failed cli_dist_step. */
const char *cli_dist_error(const cli_dist *d);
/* Whether any process passes true (they decide together, e.g. to stop). */
bool cli_dist_any(cli_dist *d, bool flag);
/* Bytes handed to the reductions and seconds spent in them so far. */
void cli_dist_reduced(const cli_dist *d, uint64_t *bytes, double *seconds);
/* Leave the job; a failure (status other than 0 and 130) stops every
 * process of it, so that none waits for this one. Returns status. */
int cli_dist_end(cli_dist *d, int status);
/* ---- the safetensors container of checkpoints (st.c) ---- */

/* A file read whole: its header (JSON) with the metadata, and where the
 * data section starts. */
typedef struct {
    char *bytes;
    size_t len;
    json_t *header, *meta;      /* meta: header["__metadata__"], an object */
    const char *data;
    size_t data_len;
} cli_st;

/* Read a file and its header; an error line when it is not one. */
int cli_st_read(const char *path, cli_st *f);
void cli_st_free(cli_st *f);
/* A whole file into out from a header (its __metadata__ loses
 * lflex.writer and gets, with `crc`, the lflex.crc32 of the result, else
 * none: a file without it is read without the check) and the data
 * section. */
int cli_st_build(json_t *header, const char *data, size_t data_len, bool crc, cli_buf *out);
/* "ema" or "raw" for a weights-only file (lflex export), else NULL. */
const char *cli_st_weights_only(const cli_st *f);

/* ---- commands ---- */
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_order(int argc, char **argv);
int cmd_rates(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Set by the SIGINT handler; long loops check it. */
extern volatile int cli_interrupted;
void cli_catch_interrupt(void);

#endif
