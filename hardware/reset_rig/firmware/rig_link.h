/*
 * Line framing for the reset-rig protocol (rig_protocol.h): CRC-8, a line assembler that never
 * overflows, a strict parser for "<NAME> <seq> [int ...]*CC" and a reply builder.
 */
#ifndef RIG_LINK_H
#define RIG_LINK_H

#include <stdint.h>

#include "rig_protocol.h"

#define RIG_MAX_ARGS 10

uint8_t rig_crc8(const char* data, uint8_t len);

/* Collects bytes into lines. feed() returns FEED_LINE when line() holds a complete line (without
 * '\n'), FEED_OVERFLOW once when a line grows past RIG_MAX_LINE (its bytes are then dropped up to
 * the next '\n'), FEED_NONE otherwise. '\r' is ignored; empty lines are skipped. */
enum FeedResult : uint8_t { FEED_NONE, FEED_LINE, FEED_OVERFLOW };

class LineAssembler {
 public:
  FeedResult feed(uint8_t c);
  char* line() { return buf_; }
  uint8_t length() const { return done_len_; }

 private:
  char buf_[RIG_MAX_LINE + 1];
  uint8_t len_ = 0, done_len_ = 0;
  bool discarding_ = false;
};

struct Command {
  const char* name;  // points into the parsed line
  uint16_t seq;
  uint8_t nargs;
  int32_t args[RIG_MAX_ARGS];
};

/* Parse a line in place. Returns RIG_ERR_NONE, RIG_ERR_BAD_CHECKSUM or RIG_ERR_BAD_SYNTAX (seq is
 * unknown then), or RIG_ERR_BAD_ARGUMENT (seq is valid, an argument is not a 32-bit integer or
 * there are too many). */
uint8_t rig_parse(char* line, uint8_t len, Command* out);

/* Builds one outgoing line: start(), add fields, then finish() appends "*CC\n". */
class LineWriter {
 public:
  void start(const char* first);
  void add(const char* text);
  void add_int(int32_t value);
  const char* finish();  // returns the NUL-terminated line
  uint8_t length() const { return len_; }

 private:
  void put(char c);
  char buf_[RIG_MAX_LINE + 8];
  uint8_t len_ = 0;
};

#endif
