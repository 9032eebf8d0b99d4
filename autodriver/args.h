/* args.h: the autodriver's command line (same options as Tango's original
 * autodriver) and its strict parser. */
#ifndef AD_ARGS_H
#define AD_ARGS_H

#include <limits.h>
#include <stddef.h>

/* Largest value any numeric option takes (the original stored them in an unsigned). */
#define AD_ARG_MAX UINT_MAX

struct ad_args {
    unsigned long nproc;      /* -u: RLIMIT_NPROC of the job; 0 = unchanged */
    unsigned long fsize;      /* -f: RLIMIT_FSIZE in bytes; 0 = unchanged */
    unsigned long timeout;    /* -t: seconds before the job is killed; 0 = none */
    unsigned long osize;      /* -o: bytes of output printed; 0 = all */
    unsigned long interval;   /* -i: accepted for compatibility, not used */
    const char *timezone;     /* -z: TZ for the job, or NULL */
    char dirname[NAME_MAX + 1]; /* the job directory: one path component */
};

enum {
    AD_ARGS_OK = 0,    /* parsed; run the job */
    AD_ARGS_HELP = 1,  /* --help / -h: print ad_usage() to stdout, exit 0 */
    AD_ARGS_ERROR = -1 /* usage error: err says why; print it and ad_usage(), exit 1 */
};

/* Parses argv (argv[0] is the program name). Never exits, never prints. */
int ad_parse_args(int argc, char *const argv[], struct ad_args *out,
                  char *err, size_t errlen);

/* Parses a decimal number: digits only (no sign, space or prefix), at most max.
 * Returns 0 and sets *out, or -1 (and *out untouched). */
int ad_parse_uint(const char *s, unsigned long max, unsigned long *out);

/* The usage text, ending in a newline. */
const char *ad_usage(void);

#endif
