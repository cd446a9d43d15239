#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int min_level = QV_LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void qv_log_set_level(int level) { min_level = level; }

int qv_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void qv_log(int level, const char *event, const char *fields, ...)
{
    if (level < min_level)
        return;
    char line[1024], ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s event=%s ", ts, now.tv_nsec / 1000000, names[level],
                     event);
    if (n > 0 && (size_t)n < sizeof line) {
        va_list ap;
        va_start(ap, fields);
        vsnprintf(line + n, sizeof line - (size_t)n, fields, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line); /* one write per line: lines from different threads do not interleave */
}
