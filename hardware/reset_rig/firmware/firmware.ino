/*
 * Reset-rig firmware (ATmega328P: Arduino Uno / Nano): two stepper axes that set the router's
 * rotation and its position on the rail, driven by line commands over USB serial.
 *
 *   make -C hardware/reset_rig            # build/reset_rig.hex, size printed
 *   make -C hardware/reset_rig flash PORT=/dev/ttyACM0
 *
 * Protocol: rig_protocol.h and PROTOCOL.md. Wiring: WIRING.md. Safety behaviour:
 *   - motors move only after HOME (or during it) and only to targets inside the soft limits;
 *   - every motion ends with exactly one EVT DONE or EVT ABORT carrying the command's seq;
 *   - host silence longer than the watchdog period during a motion halts it (ABORT WATCHDOG);
 *   - STOP halts at once, whatever its seq (never answered from the repeat cache), and keeps the
 *     drivers enabled, so the axes hold their position;
 *   - the emergency-stop input halts, disables the drivers and forgets the home position;
 *   - a limit switch seen outside homing halts and forgets the home position;
 *   - CONFIG keeps 0 (where HOME ends) inside the soft limits, and forgets the home position
 *     (saying so in its reply) when the rig would otherwise idle outside the new limits;
 *   - the AVR watchdog resets the board if the main loop ever stalls (boot: drivers disabled).
 */
#include <Arduino.h>
#include <avr/wdt.h>
#include <string.h>

#include "rig_config.h"
#include "rig_link.h"
#include "rig_protocol.h"
#include "stepper_axis.h"

enum Mode : uint8_t { MODE_IDLE, MODE_HOMING, MODE_MOVING };
enum HomePhase : uint8_t { HOME_SEEK, HOME_BACKOFF, HOME_CENTER, HOME_FINISHED };

struct AxisSettings {
  int32_t msteps_per_unit;  // calibration, milli-steps per degree or per millimetre
  int32_t min_milli, max_milli;  // soft limits, mdeg or um
  int32_t home_milli;  // position of the switch release point
};

struct Filter {  // debounced digital input
  uint8_t state, count;
};

static const uint8_t kLimitPins[2] = {PIN_ROT_LIMIT, PIN_TRANS_LIMIT};
static const float kMaxSpeed[2] = {ROT_MAX_SPEED, TRANS_MAX_SPEED};
static const float kAccel[2] = {ROT_ACCEL, TRANS_ACCEL};
static const float kHomeSpeed[2] = {ROT_HOME_SPEED, TRANS_HOME_SPEED};
static const int32_t kHomeTravel[2] = {ROT_HOME_MAX_TRAVEL_MDEG, TRANS_HOME_MAX_TRAVEL_UM};
static const int32_t kBackoffTravel[2] = {ROT_BACKOFF_MAX_MDEG, TRANS_BACKOFF_MAX_UM};

static StepperAxis axes[2] = {StepperAxis(PIN_ROT_STEP, PIN_ROT_DIR, ROT_DIR_POSITIVE_LEVEL),
                              StepperAxis(PIN_TRANS_STEP, PIN_TRANS_DIR, TRANS_DIR_POSITIVE_LEVEL)};
static AxisSettings settings[2] = {
    {DEFAULT_ROT_MSTEPS_PER_DEG, DEFAULT_ROT_MIN_MDEG, DEFAULT_ROT_MAX_MDEG, DEFAULT_ROT_HOME_MDEG},
    {DEFAULT_TRANS_MSTEPS_PER_MM, DEFAULT_TRANS_MIN_UM, DEFAULT_TRANS_MAX_UM, DEFAULT_TRANS_HOME_UM}};
static uint16_t watchdog_ms = DEFAULT_WATCHDOG_MS;

static Mode mode = MODE_IDLE;
static HomePhase home_phase[2];
static bool homed = false;
static uint16_t motion_seq = 0;  // seq of the current or last HOME/MOVE
static uint8_t motion_code = RIG_ERR_NONE;  // how the last motion ended
static uint32_t last_rx_ms = 0;  // last valid line from the host
static Filter limit_filter[2], estop_filter;

static LineAssembler assembler;
static LineWriter writer;
static uint16_t last_seq = 0;  // seq of the last executed command; a repeat gets the cached reply
static char last_reply[RIG_MAX_LINE + 8];

// ---------------------------------------------------------------------------------------------
// Units: positions travel as milli-units (mdeg, um); the axes count steps. Rounded half away from
// zero; the Python client (rig_protocol.steps_from_milli) uses the same rule.

// Kept out of line: its 64-bit arithmetic, inlined at each of its callers, cost ~0.9 kB of flash.
__attribute__((noinline)) static int32_t steps_from_milli(int32_t milli, int32_t msteps_per_unit) {
  int64_t num = (int64_t)milli * msteps_per_unit;
  return (int32_t)((num >= 0 ? num + 500000 : num - 500000) / 1000000);
}

static int32_t milli_from_steps(int32_t steps, int32_t msteps_per_unit) {
  int64_t num = (int64_t)steps * 1000000;
  int64_t half = msteps_per_unit / 2;
  return (int32_t)((num >= 0 ? num + half : num - half) / msteps_per_unit);
}

static int32_t axis_milli(uint8_t i) { return milli_from_steps(axes[i].position(), settings[i].msteps_per_unit); }

// ---------------------------------------------------------------------------------------------
// Output

static void send_line(const char* line) { Serial.write(line, strlen(line)); }

static void send_reply_ok() {  // the writer holds "OK <seq> ..." ; caches it for repeats
  const char* line = writer.finish();
  strcpy(last_reply, line);
  send_line(line);
}

static void send_error(uint16_t seq, uint8_t code) {
  writer.start("ERR");
  writer.add_int(seq);
  writer.add_int(code);
  const char* line = writer.finish();
  if (seq != 0) strcpy(last_reply, line);
  send_line(line);
}

static void send_motion_end(uint8_t code) {
  writer.start("EVT");
  writer.add(code == RIG_ERR_NONE ? RIG_EVT_DONE : RIG_EVT_ABORT);
  writer.add_int(motion_seq);
  if (code != RIG_ERR_NONE) writer.add_int(code);
  writer.add_int(axis_milli(0));
  writer.add_int(axis_milli(1));
  send_line(writer.finish());
}

// ---------------------------------------------------------------------------------------------
// Motion

static void drivers_enable(bool on) { digitalWrite(PIN_ENABLE, on ? LOW : HIGH); }

static void halt_axes() {
  axes[0].halt();
  axes[1].halt();
}

/* End the current motion: report it once, remember how it ended. */
static void end_motion(uint8_t code) {
  if (mode == MODE_IDLE) return;
  halt_axes();
  if (code != RIG_ERR_NONE && mode == MODE_HOMING) homed = false;
  mode = MODE_IDLE;
  motion_code = code;
  send_motion_end(code);
}

static bool update_filter(Filter* f, uint8_t raw) {
  if (raw == f->state) {
    f->count = 0;
  } else if (++f->count >= INPUT_FILTER_SAMPLES) {
    f->state = raw;
    f->count = 0;
    return true;  // changed
  }
  return false;
}

static void start_homing_axis(uint8_t i, uint32_t now) {
  StepperAxis& a = axes[i];
  if (limit_filter[i].state) {  // already on the switch: go straight to backing off
    home_phase[i] = HOME_BACKOFF;
    a.set_profile(HOME_BACKOFF_SPEED, kAccel[i]);
    a.move_to(a.position() + steps_from_milli(kBackoffTravel[i], settings[i].msteps_per_unit), now);
  } else {
    home_phase[i] = HOME_SEEK;
    a.set_profile(kHomeSpeed[i], kAccel[i]);
    a.move_to(a.position() - steps_from_milli(kHomeTravel[i], settings[i].msteps_per_unit), now);
  }
}

/* Advance homing of one axis. Returns an error code when homing failed. */
static uint8_t step_homing_axis(uint8_t i, uint32_t now) {
  StepperAxis& a = axes[i];
  switch (home_phase[i]) {
    case HOME_SEEK:
      if (limit_filter[i].state) {
        a.halt();
        home_phase[i] = HOME_BACKOFF;
        a.set_profile(HOME_BACKOFF_SPEED, kAccel[i]);
        a.move_to(a.position() + steps_from_milli(kBackoffTravel[i], settings[i].msteps_per_unit), now);
      } else if (!a.moving()) {
        return RIG_ERR_HOME_FAILED;  // travelled the maximum without reaching the switch
      }
      break;
    case HOME_BACKOFF:
      if (!limit_filter[i].state) {
        a.halt();
        a.set_position(steps_from_milli(settings[i].home_milli, settings[i].msteps_per_unit));
        home_phase[i] = HOME_CENTER;
        a.set_profile(kMaxSpeed[i], kAccel[i]);
        a.move_to(0, now);
      } else if (!a.moving()) {
        return RIG_ERR_HOME_FAILED;  // the switch never released
      }
      break;
    case HOME_CENTER:
      if (limit_filter[i].state) return RIG_ERR_LIMIT_HIT;
      if (!a.moving()) home_phase[i] = HOME_FINISHED;
      break;
    case HOME_FINISHED:
      break;
  }
  return RIG_ERR_NONE;
}

static void update_motion(uint32_t now_us) {
  if (mode == MODE_IDLE) return;
  if ((uint32_t)(millis() - last_rx_ms) > watchdog_ms) {
    end_motion(RIG_ERR_WATCHDOG);
    return;
  }
  if (mode == MODE_HOMING) {
    for (uint8_t i = 0; i < 2; i++) {
      uint8_t code = step_homing_axis(i, now_us);
      if (code != RIG_ERR_NONE) {
        end_motion(code);
        return;
      }
    }
    if (home_phase[0] == HOME_FINISHED && home_phase[1] == HOME_FINISHED) {
      homed = true;
      end_motion(RIG_ERR_NONE);
    }
    return;
  }
  for (uint8_t i = 0; i < 2; i++) {
    if (limit_filter[i].state) {
      homed = false;  // the axis is not where we think: home again
      end_motion(RIG_ERR_LIMIT_HIT);
      return;
    }
  }
  if (!axes[0].moving() && !axes[1].moving()) end_motion(RIG_ERR_NONE);
}

static void poll_inputs() {
  for (uint8_t i = 0; i < 2; i++) update_filter(&limit_filter[i], digitalRead(kLimitPins[i]));
  if (update_filter(&estop_filter, digitalRead(PIN_ESTOP))) {
    if (estop_filter.state) {
      end_motion(RIG_ERR_ESTOP);
      halt_axes();
      drivers_enable(false);
      homed = false;  // the axes may be pushed by hand while unpowered
    }
    writer.start("EVT");
    writer.add(RIG_EVT_ESTOP);
    writer.add_int(estop_filter.state);
    send_line(writer.finish());
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

static bool config_valid(const int32_t* a) {
  for (uint8_t i = 0; i < 2; i++) {
    int32_t spu = a[i], lo = a[2 + 2 * i], hi = a[3 + 2 * i], home = a[6 + i];
    int32_t abs_max = i == 0 ? CONFIG_ROT_ABS_MAX_MDEG : CONFIG_TRANS_ABS_MAX_UM;
    if (spu < CONFIG_MSTEPS_PER_UNIT_MIN || spu > CONFIG_MSTEPS_PER_UNIT_MAX) return false;
    if (lo >= hi || lo < -abs_max || hi > abs_max) return false;
    if (lo > 0 || hi < 0) return false;  // HOME ends at 0: it must lie inside the soft range
    if (home >= lo || home < -abs_max) return false;  // the switch lies below the soft range
  }
  return a[8] >= CONFIG_WATCHDOG_MIN_MS && a[8] <= CONFIG_WATCHDOG_MAX_MS;
}

/* Apply new settings. The home stays valid only where the step counters keep their meaning and
 * the rig stands where a MOVE under the new limits may put it; otherwise `homed` is cleared and
 * *home_cleared says so (the reply's field), so that a rig never idles homed outside its limits. */
static uint8_t cmd_config(const Command& c, bool* home_cleared) {
  if (mode != MODE_IDLE) return RIG_ERR_BUSY;
  if (!config_valid(c.args)) return RIG_ERR_BAD_ARGUMENT;
  bool was_homed = homed;
  for (uint8_t i = 0; i < 2; i++) {
    AxisSettings s = {c.args[i], c.args[2 + 2 * i], c.args[3 + 2 * i], c.args[6 + i]};
    int32_t pos = axes[i].position();
    if (s.msteps_per_unit != settings[i].msteps_per_unit || s.home_milli != settings[i].home_milli ||
        pos < steps_from_milli(s.min_milli, s.msteps_per_unit) ||
        pos > steps_from_milli(s.max_milli, s.msteps_per_unit)) {
      homed = false;
    }
    settings[i] = s;
  }
  watchdog_ms = (uint16_t)c.args[8];
  *home_cleared = was_homed && !homed;
  return RIG_ERR_NONE;
}

static uint8_t cmd_home(const Command& c) {
  if (estop_filter.state) return RIG_ERR_ESTOP;
  if (mode != MODE_IDLE) return RIG_ERR_BUSY;
  drivers_enable(true);
  homed = false;
  mode = MODE_HOMING;
  motion_seq = c.seq;
  motion_code = RIG_ERR_NONE;
  uint32_t now = micros();
  for (uint8_t i = 0; i < 2; i++) start_homing_axis(i, now);
  return RIG_ERR_NONE;
}

static uint8_t cmd_move(const Command& c, int32_t* target_steps) {
  if (estop_filter.state) return RIG_ERR_ESTOP;
  if (mode != MODE_IDLE) return RIG_ERR_BUSY;
  if (!homed) return RIG_ERR_NOT_HOMED;
  for (uint8_t i = 0; i < 2; i++) {
    if (c.args[i] < settings[i].min_milli || c.args[i] > settings[i].max_milli) return RIG_ERR_OUT_OF_RANGE;
  }
  mode = MODE_MOVING;
  motion_seq = c.seq;
  motion_code = RIG_ERR_NONE;
  uint32_t now = micros();
  for (uint8_t i = 0; i < 2; i++) {
    target_steps[i] = steps_from_milli(c.args[i], settings[i].msteps_per_unit);
    axes[i].set_profile(kMaxSpeed[i], kAccel[i]);
    axes[i].move_to(target_steps[i], now);
  }
  return RIG_ERR_NONE;
}

static bool is(const Command& c, const char* name, uint8_t nargs, uint8_t* error) {
  if (strcmp(c.name, name) != 0) return false;
  *error = c.nargs == nargs ? RIG_ERR_NONE : RIG_ERR_BAD_ARGUMENT;
  return true;
}

static void execute(const Command& c) {
  uint8_t err = RIG_ERR_NONE;
  writer.start("OK");
  writer.add_int(c.seq);
  if (is(c, RIG_CMD_HELLO, RIG_CMD_HELLO_NARGS, &err)) {
    if (!err && c.args[0] != RIG_PROTOCOL_VERSION) err = RIG_ERR_VERSION_MISMATCH;
    writer.add_int(RIG_PROTOCOL_VERSION);
    writer.add(RIG_FIRMWARE_VERSION);
  } else if (is(c, RIG_CMD_STATUS, RIG_CMD_STATUS_NARGS, &err)) {
    const char* state = estop_filter.state ? RIG_STATE_ESTOP
                        : mode == MODE_HOMING ? RIG_STATE_HOMING
                        : mode == MODE_MOVING ? RIG_STATE_MOVING
                                              : RIG_STATE_IDLE;
    writer.add(state);
    writer.add_int(homed);
    writer.add_int(axis_milli(0));
    writer.add_int(axis_milli(1));
    writer.add_int(axes[0].position());
    writer.add_int(axes[1].position());
    writer.add_int(motion_seq);
    writer.add_int(motion_code);
    writer.add_int(estop_filter.state);
  } else if (is(c, RIG_CMD_CONFIG, RIG_CMD_CONFIG_NARGS, &err)) {
    bool home_cleared;
    if (!err) err = cmd_config(c, &home_cleared);
    if (!err) writer.add_int(home_cleared);
  } else if (is(c, RIG_CMD_HOME, RIG_CMD_HOME_NARGS, &err)) {
    if (!err) err = cmd_home(c);
  } else if (is(c, RIG_CMD_MOVE, RIG_CMD_MOVE_NARGS, &err)) {
    int32_t target[2];
    if (!err) err = cmd_move(c, target);
    if (!err) {
      writer.add_int(target[0]);
      writer.add_int(target[1]);
    }
  } else if (is(c, RIG_CMD_STOP, RIG_CMD_STOP_NARGS, &err)) {
    if (!err) {
      end_motion(RIG_ERR_STOPPED);  // the ABORT event goes out before the reply
      halt_axes();
      writer.start("OK");
      writer.add_int(c.seq);
    }
  } else {
    err = RIG_ERR_UNKNOWN_COMMAND;
  }
  if (err) {
    send_error(c.seq, err);
  } else {
    send_reply_ok();
  }
}

static void handle_line(char* line, uint8_t len) {
  Command c;
  uint8_t err = rig_parse(line, len, &c);
  if (err == RIG_ERR_BAD_CHECKSUM || err == RIG_ERR_BAD_SYNTAX) {
    send_error(0, err);
    return;
  }
  last_rx_ms = millis();  // a checksummed line from the host: it is alive
  // The repeat cache keeps a retried command from running twice. HELLO and STOP always run:
  // running them again is harmless, and a STOP answered from the cache would leave a motion
  // running (e.g. a STOP that reuses the seq of the MOVE it means to halt).
  if (strcmp(c.name, RIG_CMD_HELLO) == 0) {
    last_seq = 0;  // a new session: forget the repeat cache
  } else if (c.seq == last_seq && strcmp(c.name, RIG_CMD_STOP) != 0) {
    send_line(last_reply);  // a retry of the command just executed: answer again, do not repeat it
    return;
  }
  last_seq = c.seq;
  if (err) {
    send_error(c.seq, err);
    return;
  }
  execute(c);
}

// ---------------------------------------------------------------------------------------------

void setup() {
  MCUSR = 0;
  wdt_disable();
  pinMode(PIN_ENABLE, OUTPUT);
  drivers_enable(false);
  for (uint8_t i = 0; i < 2; i++) {
    axes[i].begin();
    pinMode(kLimitPins[i], INPUT_PULLUP);
    limit_filter[i].state = digitalRead(kLimitPins[i]);
  }
  pinMode(PIN_ESTOP, INPUT_PULLUP);
  estop_filter.state = digitalRead(PIN_ESTOP);
  Serial.begin(RIG_BAUD);
  writer.start("EVT");
  writer.add(RIG_EVT_BOOT);
  writer.add_int(RIG_PROTOCOL_VERSION);
  writer.add(RIG_FIRMWARE_VERSION);
  send_line(writer.finish());
  if (estop_filter.state) {
    writer.start("EVT");
    writer.add(RIG_EVT_ESTOP);
    writer.add_int(1);
    send_line(writer.finish());
  }
  wdt_enable(WDTO_500MS);
}

void loop() {
  wdt_reset();
  uint32_t now = micros();
  axes[0].run(now);
  axes[1].run(now);
  static uint32_t last_poll_us = 0;
  if ((uint32_t)(now - last_poll_us) >= INPUT_POLL_US) {  // inputs are sampled every 200 us
    last_poll_us = now;
    poll_inputs();
  }
  update_motion(now);
  // A few bytes per pass keep the step timing smooth while a line arrives.
  for (uint8_t n = 0; n < 8 && Serial.available() > 0; n++) {
    FeedResult r = assembler.feed((uint8_t)Serial.read());
    if (r == FEED_OVERFLOW) {
      send_error(0, RIG_ERR_LINE_TOO_LONG);
    } else if (r == FEED_LINE) {
      handle_line(assembler.line(), assembler.length());
      break;
    }
  }
}
