#include "rig_link.h"

#include <stdlib.h>
#include <string.h>

uint8_t rig_crc8(const char* data, uint8_t len) {
  uint8_t crc = 0;
  for (uint8_t i = 0; i < len; i++) {
    crc ^= (uint8_t)data[i];
    for (uint8_t b = 0; b < 8; b++) crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ 0x07) : (uint8_t)(crc << 1);
  }
  return crc;
}

FeedResult LineAssembler::feed(uint8_t c) {
  if (c == '\n') {
    bool had = !discarding_ && len_ > 0;
    discarding_ = false;
    done_len_ = len_;
    buf_[len_] = '\0';
    len_ = 0;
    return had ? FEED_LINE : FEED_NONE;
  }
  if (c == '\r' || discarding_) return FEED_NONE;
  if (len_ >= RIG_MAX_LINE) {
    discarding_ = true;
    len_ = 0;
    return FEED_OVERFLOW;
  }
  buf_[len_++] = (char)c;
  return FEED_NONE;
}

static int8_t hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Strict decimal integer: optional '-', 1..10 digits, within int32. */
static bool parse_int(const char* s, int32_t* out) {
  bool neg = false;
  if (*s == '-') {
    neg = true;
    s++;
  }
  if (*s == '\0') return false;
  int64_t v = 0;
  uint8_t digits = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || ++digits > 10) return false;
    v = v * 10 + (*s - '0');
  }
  if (neg) v = -v;
  if (v < -2147483647LL - 1 || v > 2147483647LL) return false;
  *out = (int32_t)v;
  return true;
}

static bool is_name(const char* s) {
  if (*s == '\0') return false;
  for (; *s; s++)
    if (*s < 'A' || *s > 'Z') return false;
  return true;
}

uint8_t rig_parse(char* line, uint8_t len, Command* out) {
  // Checksum: the last three bytes are '*' and two hex digits.
  if (len < 4 || line[len - 3] != '*') return RIG_ERR_BAD_CHECKSUM;
  int8_t hi = hex_value(line[len - 2]), lo = hex_value(line[len - 1]);
  if (hi < 0 || lo < 0) return RIG_ERR_BAD_CHECKSUM;
  uint8_t body_len = len - 3;
  if (rig_crc8(line, body_len) != (uint8_t)((hi << 4) | lo)) return RIG_ERR_BAD_CHECKSUM;
  line[body_len] = '\0';
  for (uint8_t i = 0; i < body_len; i++)
    if (line[i] < ' ' || line[i] > '~') return RIG_ERR_BAD_SYNTAX;

  // Tokens separated by single spaces: NAME SEQ ARG*.
  char* tokens[RIG_MAX_ARGS + 3];
  uint8_t n = 0;
  char* p = line;
  while (true) {
    tokens[n++] = p;
    if (n == RIG_MAX_ARGS + 3) break;  // the rest stays in the last token and fails to parse
    char* space = strchr(p, ' ');
    if (!space) break;
    *space = '\0';
    p = space + 1;
  }
  if (n < 2 || !is_name(tokens[0])) return RIG_ERR_BAD_SYNTAX;
  int32_t seq;
  if (!parse_int(tokens[1], &seq) || tokens[1][0] == '-' || seq < 1 || seq > 65535) return RIG_ERR_BAD_SYNTAX;
  out->name = tokens[0];
  out->seq = (uint16_t)seq;
  out->nargs = 0;
  if (n - 2 > RIG_MAX_ARGS) return RIG_ERR_BAD_ARGUMENT;
  for (uint8_t i = 2; i < n; i++) {
    if (!parse_int(tokens[i], &out->args[out->nargs])) return RIG_ERR_BAD_ARGUMENT;
    out->nargs++;
  }
  return RIG_ERR_NONE;
}

void LineWriter::put(char c) {
  if (len_ < RIG_MAX_LINE - 3) buf_[len_++] = c;
}

void LineWriter::start(const char* first) {
  len_ = 0;
  add(first);
}

void LineWriter::add(const char* text) {
  if (len_ > 0) put(' ');
  while (*text) put(*text++);
}

void LineWriter::add_int(int32_t value) {
  char tmp[12];
  ltoa(value, tmp, 10);
  add(tmp);
}

const char* LineWriter::finish() {
  static const char hex[] = "0123456789ABCDEF";
  uint8_t crc = rig_crc8(buf_, len_);
  buf_[len_++] = '*';
  buf_[len_++] = hex[crc >> 4];
  buf_[len_++] = hex[crc & 0x0F];
  buf_[len_++] = '\n';
  buf_[len_] = '\0';
  return buf_;
}
