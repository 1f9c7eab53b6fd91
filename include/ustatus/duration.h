/* Durations in Go syntax, as Centrifugo's configuration writes them. */
#ifndef USTATUS_DURATION_H
#define USTATUS_DURATION_H

#include <stdint.h>

/* Parses a Go-syntax duration ("90s", "1h30m", "500ms", "0"; units ns us µs ms s m h;
 * a bare "0" is allowed, other bare numbers are not; negative durations are rejected).
 * Stores milliseconds (sub-millisecond parts are truncated). Returns 0, or -1 on a
 * malformed or overflowing value (*out_ms untouched then). */
int us_duration_parse_ms(const char *s, int64_t *out_ms);

#endif
