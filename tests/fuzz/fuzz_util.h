/* fuzz_util.h: what several libFuzzer harnesses share: a private temporary
 * directory, a file in it rewritten with each input, and a NUL-terminated
 * copy of an input. Every helper aborts on a set-up failure (the harness
 * cannot go on, and abort() makes libFuzzer say so loudly). */
#ifndef TANGO_FUZZ_UTIL_H
#define TANGO_FUZZ_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir_[64];

static inline int fuzz_rm_(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path); /* best effort: go on with the rest */
    return 0;
}

static inline void fuzz_rm_tmpdir_(void)
{
    if (fuzz_dir_[0])
        nftw(fuzz_dir_, fuzz_rm_, 16, FTW_DEPTH | FTW_PHYS);
}

/* A directory made once per process (mkdtemp) under $TANGO_FUZZ_TMP
 * (tests/fuzz/run.sh empties it before each run: libFuzzer's end of run
 * skips atexit) or /tmp, removed with everything in it when the process
 * exits normally. */
static inline const char *fuzz_tmpdir(void)
{
    if (!fuzz_dir_[0]) {
        const char *base = getenv("TANGO_FUZZ_TMP");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/tango-fuzz-XXXXXX",
                 base && base[0] == '/' && strlen(base) < 40 ? base : "/tmp");
        if (!mkdtemp(fuzz_dir_) || atexit(fuzz_rm_tmpdir_) != 0)
            abort();
    }
    return fuzz_dir_;
}

/* Writes data to path (created 0600 or truncated; never through a link). */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0)
            abort();
        data += n;
        size -= (size_t)n;
    }
    close(fd);
}

/* A malloc'd NUL-terminated copy of the input (caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The HTTP harnesses' first input byte: how the rest arrives, 0 all at
 * once (SIZE_MAX), else pieces of that many bytes. Takes it off *data. */
static inline size_t fuzz_take_piece(const uint8_t **data, size_t *size)
{
    size_t piece = (*data)[0] ? (*data)[0] : SIZE_MAX;
    (*data)++;
    (*size)--;
    return piece;
}

#endif
