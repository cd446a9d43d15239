/* Structured log lines on stderr: `ts=2026-11-23T15:31:00.123Z level=info event=server.start key=value ...`. */
#ifndef QV_LOG_H
#define QV_LOG_H

enum { QV_LOG_DEBUG, QV_LOG_INFO, QV_LOG_WARN, QV_LOG_ERROR };

void qv_log_set_level(int level);
/* Parses "debug|info|warn|error"; returns -1 if unknown. */
int qv_log_parse_level(const char *s);
/* fields: printf-style "key=value key2=value2" text appended after the event name. */
void qv_log(int level, const char *event, const char *fields, ...) __attribute__((format(printf, 3, 4)));

#endif
