/*
 * Reset-rig hardware configuration: pins, drive speeds and the defaults that the host may replace
 * with the CONFIG command (the Python client sends its ResetRigConfig on every connect).
 *
 * Pins follow the common "CNC Shield V3" for the Arduino Uno (WIRING.md): rotation on the shield's
 * X driver, translation on its Y driver, X-/Y- endstops, and Abort (A0) as the emergency stop.
 */
#ifndef RIG_CONFIG_H
#define RIG_CONFIG_H

#include <stdint.h>

/* Axis 0: router rotation (gear on stepper 1). Axis 1: rail translation (pulley on stepper 2). */
#define PIN_ROT_STEP 2
#define PIN_ROT_DIR 5
#define PIN_TRANS_STEP 3
#define PIN_TRANS_DIR 6
#define PIN_ENABLE 8 /* shared by both drivers, LOW = enabled */
#define PIN_ROT_LIMIT 9 /* normally-closed switch to GND: LOW = free, HIGH = pressed or wire broken */
#define PIN_TRANS_LIMIT 10
#define PIN_ESTOP A0 /* normally-closed button to GND: HIGH = stop (pressed or wire broken) */

/* DIR pin level that makes an axis move towards positive units (flip if an axis runs backwards). */
#define ROT_DIR_POSITIVE_LEVEL 1
#define TRANS_DIR_POSITIVE_LEVEL 1

/* Drive profile in steps/s and steps/s^2 (1/16 microstepping). */
#define ROT_MAX_SPEED 800.0f     /* 30 deg/s with the default calibration */
#define TRANS_MAX_SPEED 1600.0f  /* 20 mm/s */
#define ROT_ACCEL 4000.0f
#define TRANS_ACCEL 8000.0f
#define ROT_HOME_SPEED 400.0f    /* approach to the switch */
#define TRANS_HOME_SPEED 800.0f
#define HOME_BACKOFF_SPEED 100.0f /* leaving the switch, both axes */

/* Homing gives up (HOME_FAILED) after this travel without reaching / leaving the switch. */
#define ROT_HOME_MAX_TRAVEL_MDEG 30000L
#define TRANS_HOME_MAX_TRAVEL_UM 30000L
#define ROT_BACKOFF_MAX_MDEG 3000L
#define TRANS_BACKOFF_MAX_UM 3000L

/* Defaults (the host normally overrides them with CONFIG). Calibration in milli-steps per unit:
 * rotation 200 full steps x 16 microsteps x 3:1 gear / 360 deg = 26.667 steps/deg;
 * translation 200 x 16 / (20-tooth GT2 pulley = 40 mm per turn) = 80 steps/mm. */
#define DEFAULT_ROT_MSTEPS_PER_DEG 26667L
#define DEFAULT_TRANS_MSTEPS_PER_MM 80000L
#define DEFAULT_ROT_MIN_MDEG -8500L
#define DEFAULT_ROT_MAX_MDEG 8500L
#define DEFAULT_TRANS_MIN_UM -10500L
#define DEFAULT_TRANS_MAX_UM 10500L
#define DEFAULT_ROT_HOME_MDEG -9500L   /* where the switch releases, in axis units */
#define DEFAULT_TRANS_HOME_UM -11500L
#define DEFAULT_WATCHDOG_MS 1000U

/* Bounds that CONFIG values must respect (BAD_ARGUMENT otherwise). */
#define CONFIG_MSTEPS_PER_UNIT_MIN 1000L     /* 1 step per unit */
#define CONFIG_MSTEPS_PER_UNIT_MAX 1000000L  /* 1000 steps per unit */
#define CONFIG_ROT_ABS_MAX_MDEG 90000L
#define CONFIG_TRANS_ABS_MAX_UM 200000L
#define CONFIG_WATCHDOG_MIN_MS 100L
#define CONFIG_WATCHDOG_MAX_MS 60000L

/* Input filter: a switch changes state after this many equal consecutive samples, taken every
 * INPUT_POLL_US (so 0.6 ms of agreement; far shorter than one step at homing speed). */
#define INPUT_FILTER_SAMPLES 3
#define INPUT_POLL_US 200

#endif
