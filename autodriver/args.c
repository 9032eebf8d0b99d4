/* args.c: parses the autodriver's command line.
 *
 *   autodriver [-u NPROC] [-f FSIZE] [-t TIMEOUT] [-o OSIZE] [-z TIMEZONE]
 *              [-i INTERVAL] DIRECTORY
 *
 * Option letters, long names and defaults (0 = no limit) are the original's;
 * options may come before or after DIRECTORY, values attached (-u5,
 * --nproc=5) or separate (-u 5, --nproc 5); "--" ends the options. Numbers
 * are strict decimal. DIRECTORY must name one directory in the current one
 * (trailing slashes are allowed), since it is moved into the grading user's
 * home under the same name. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

enum opt_kind { OPT_NUM, OPT_TZ };

struct opt {
    char letter;
    const char *name;
    enum opt_kind kind;
    size_t offset; /* of the unsigned long field, for OPT_NUM */
};

static const struct opt options[] = {
    {'u', "nproc", OPT_NUM, offsetof(struct ad_args, nproc)},
    {'f', "fsize", OPT_NUM, offsetof(struct ad_args, fsize)},
    {'t', "timeout", OPT_NUM, offsetof(struct ad_args, timeout)},
    {'o', "osize", OPT_NUM, offsetof(struct ad_args, osize)},
    {'i', "timestamp-interval", OPT_NUM, offsetof(struct ad_args, interval)},
    {'z', "timezone", OPT_TZ, 0},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const char usage_text[] =
    "Usage: autodriver [-u NPROC] [-f FSIZE] [-t TIMEOUT] [-o OSIZE] [-z TIMEZONE] DIRECTORY\n"
    "Moves DIRECTORY into the home of the grading user " "autograde" ", runs `make` there as\n"
    "that user and prints its status line and its output (stdout+stderr).\n"
    "  -u, --nproc=NUMBER      limit the processes of the grading user (0 = no limit)\n"
    "  -f, --fsize=BYTES       limit the size of any file the job writes (0 = no limit)\n"
    "  -t, --timeout=SECONDS   kill the job after this many seconds (0 = no limit)\n"
    "  -o, --osize=BYTES       print at most this much output, eliding the middle (0 = all)\n"
    "  -z, --timezone=TZ       time zone of the job (its TZ variable)\n"
    "  -i, --timestamp-interval=SECONDS  accepted for compatibility; ignored\n"
    "  -h, --help              print this help\n"
    "Must be installed setuid root and run by an ordinary user (not root, not autograde).\n"
    "Exit status: 0 job finished, 1 usage error, 2 job timed out, 3 OS error.\n";

const char *ad_usage(void)
{
    return usage_text;
}

int ad_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return AD_ARGS_ERROR;
}

/* A time zone is handed to the job as TZ: printable ASCII, no spaces. */
static int valid_timezone(const char *tz)
{
    size_t n = strlen(tz);
    if (n == 0 || n > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)tz; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return 0;
    return 1;
}

static int apply(const struct opt *o, const char *value, struct ad_args *a,
                 char *err, size_t errlen)
{
    if (o->kind == OPT_TZ) {
        if (!valid_timezone(value))
            return fail(err, errlen,
                        "The argument to timezone must be 1 to 255 printable characters "
                        "without spaces, got '%s'", value);
        a->timezone = value;
        return 0;
    }
    unsigned long *field = (unsigned long *)((char *)a + o->offset);
    if (ad_parse_uint(value, AD_ARG_MAX, field) < 0)
        return fail(err, errlen,
                    "The argument to %s must be a nonnegative integer (0 to %u), got '%s'",
                    o->name, AD_ARG_MAX, value);
    return 0;
}

static const struct opt *by_letter(char c)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].letter == c)
            return &options[i];
    return NULL;
}

/* Exact long name, or a unique prefix of one (as argp accepts). */
static const struct opt *by_name(const char *name, size_t len, int *ambiguous)
{
    const struct opt *found = NULL;
    int matches = 0;
    *ambiguous = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strncmp(options[i].name, name, len) != 0)
            continue;
        if (options[i].name[len] == '\0')
            return &options[i];
        found = &options[i];
        matches++;
    }
    if (matches > 1) {
        *ambiguous = 1;
        return NULL;
    }
    return found;
}

static int set_dirname(struct ad_args *a, const char *arg, char *err, size_t errlen)
{
    size_t n = strlen(arg);
    while (n > 1 && arg[n - 1] == '/')
        n--;
    if (n == 0)
        return fail(err, errlen, "The directory name must not be empty");
    if (n > NAME_MAX)
        return fail(err, errlen, "The directory name is too long (at most %d bytes)", NAME_MAX);
    if (memchr(arg, '/', n) != NULL)
        return fail(err, errlen,
                    "The directory must be a name in the current directory, without '/': '%s'",
                    arg);
    if ((n == 1 && arg[0] == '.') || (n == 2 && arg[0] == '.' && arg[1] == '.'))
        return fail(err, errlen, "The directory must not be '.' or '..'");
    memcpy(a->dirname, arg, n);
    a->dirname[n] = '\0';
    return 0;
}

/* One "--name[=value]" option at argv[*i] (the value may be the next
 * argument: *i then moves past it), applied to a. Returns AD_ARGS_OK to go
 * on, AD_ARGS_HELP for --help / --usage, or AD_ARGS_ERROR (err says why). */
static int long_option(int argc, char *const argv[], int *i, struct ad_args *a, char *err,
                       size_t errlen)
{
    const char *arg = argv[*i];
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if ((len == 4 && strncmp(name, "help", 4) == 0) ||
        (len == 5 && strncmp(name, "usage", 5) == 0)) {
        if (eq)
            return fail(err, errlen, "Option '--%.*s' takes no value", (int)len, name);
        return AD_ARGS_HELP;
    }
    int ambiguous;
    const struct opt *o = len ? by_name(name, len, &ambiguous) : NULL;
    if (o == NULL)
        return fail(err, errlen, "%s option '%s'",
                    len && ambiguous ? "Ambiguous" : "Unrecognized", arg);
    const char *value;
    if (eq) {
        value = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return fail(err, errlen, "Option '--%s' requires an argument", o->name);
        value = argv[++*i];
    }
    return apply(o, value, a, err, errlen) < 0 ? AD_ARGS_ERROR : AD_ARGS_OK;
}

/* One "-x[value]" option at argv[*i], as long_option; options without a
 * value (h, ?) may not be followed by more letters. */
static int short_option(int argc, char *const argv[], int *i, struct ad_args *a, char *err,
                        size_t errlen)
{
    const char *arg = argv[*i];
    char c = arg[1];
    if (c == 'h' || c == '?') {
        if (arg[2] != '\0')
            return fail(err, errlen, "Invalid option '%s'", arg);
        return AD_ARGS_HELP;
    }
    const struct opt *o = by_letter(c);
    if (o == NULL)
        return fail(err, errlen, "Invalid option -- '%c'", c);
    const char *value;
    if (arg[2] != '\0') {
        value = arg + 2;
    } else {
        if (*i + 1 >= argc)
            return fail(err, errlen, "Option requires an argument -- '%c'", c);
        value = argv[++*i];
    }
    return apply(o, value, a, err, errlen) < 0 ? AD_ARGS_ERROR : AD_ARGS_OK;
}

int ad_parse_args(int argc, char *const argv[], struct ad_args *out,
                  char *err, size_t errlen)
{
    struct ad_args a;
    memset(&a, 0, sizeof a);
    if (err && errlen)
        err[0] = '\0';

    const char *positional[2];
    int npos = 0;
    int options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (npos == 2)
                return fail(err, errlen, "Too many arguments");
            positional[npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        int rc = arg[1] == '-' ? long_option(argc, argv, &i, &a, err, errlen)
                               : short_option(argc, argv, &i, &a, err, errlen);
        if (rc != AD_ARGS_OK)
            return rc;
    }

    if (npos < 1)
        return fail(err, errlen, "Too few arguments: the job DIRECTORY is missing");
    if (npos > 1)
        return fail(err, errlen, "Too many arguments");
    if (set_dirname(&a, positional[0], err, errlen) < 0)
        return AD_ARGS_ERROR;
    *out = a;
    return AD_ARGS_OK;
}
