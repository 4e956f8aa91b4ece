/*
 * Reset-rig serial protocol: the firmware's copy of the message table.
 *
 * The Python copy is meld_core/hardware/rig_protocol.py; tests/test_rig_protocol.py parses this
 * file and fails when the two disagree. PROTOCOL.md documents both. Change all three together and
 * bump RIG_PROTOCOL_VERSION when the wire format changes.
 *
 * Every line, both directions:  <body>*<CRC-8 as two hex digits>\n
 * CRC-8: polynomial 0x07, initial value 0x00, no reflection, over the bytes of <body>.
 *   host -> rig:  <COMMAND> <seq> [arg ...]        seq 1..65535, a repeated seq is not executed twice
 *                                                  (except HELLO and STOP, which always run)
 *   rig -> host:  OK <seq> [field ...]             one reply per command
 *                 ERR <seq> <code>                 seq 0 when the line could not be trusted
 *                 EVT <EVENT> [field ...]          unsolicited report
 */
#ifndef RIG_PROTOCOL_H
#define RIG_PROTOCOL_H

#define RIG_PROTOCOL_VERSION 2
#define RIG_FIRMWARE_VERSION "2.0.0"
#define RIG_BAUD 115200
#define RIG_MAX_LINE 96 /* bytes before '\n', checksum included */

/* Commands: name, number of arguments, number of reply fields after "OK <seq>". */
#define RIG_CMD_HELLO "HELLO" /* args: protocol | reply: protocol firmware */
#define RIG_CMD_HELLO_NARGS 1
#define RIG_CMD_HELLO_NREPLY 2
#define RIG_CMD_STATUS "STATUS" /* reply: state homed rotation_mdeg translation_um rotation_steps
                                   translation_steps motion_seq motion_code estop */
#define RIG_CMD_STATUS_NARGS 0
#define RIG_CMD_STATUS_NREPLY 9
#define RIG_CMD_CONFIG "CONFIG" /* args: rotation_msteps_per_deg translation_msteps_per_mm
                                   rotation_min_mdeg rotation_max_mdeg translation_min_um
                                   translation_max_um rotation_home_mdeg translation_home_um
                                   watchdog_ms | reply: home_cleared (1: this CONFIG cleared homed) */
#define RIG_CMD_CONFIG_NARGS 9
#define RIG_CMD_CONFIG_NREPLY 1
#define RIG_CMD_HOME "HOME" /* motion; ends with EVT DONE or EVT ABORT carrying this seq */
#define RIG_CMD_HOME_NARGS 0
#define RIG_CMD_HOME_NREPLY 0
#define RIG_CMD_MOVE "MOVE" /* args: rotation_mdeg translation_um | reply: rotation_steps
                               translation_steps (absolute targets); motion like HOME */
#define RIG_CMD_MOVE_NARGS 2
#define RIG_CMD_MOVE_NREPLY 2
#define RIG_CMD_STOP "STOP" /* halts at once, whatever its seq; drivers stay enabled (holding) */
#define RIG_CMD_STOP_NARGS 0
#define RIG_CMD_STOP_NREPLY 0

/* Events: name, number of fields after "EVT <name>". */
#define RIG_EVT_BOOT "BOOT" /* protocol firmware */
#define RIG_EVT_BOOT_NFIELDS 2
#define RIG_EVT_DONE "DONE" /* seq rotation_mdeg translation_um */
#define RIG_EVT_DONE_NFIELDS 3
#define RIG_EVT_ABORT "ABORT" /* seq code rotation_mdeg translation_um */
#define RIG_EVT_ABORT_NFIELDS 4
#define RIG_EVT_ESTOP "ESTOP" /* active (1 pressed, 0 released) */
#define RIG_EVT_ESTOP_NFIELDS 1

/* States in the STATUS reply. */
#define RIG_STATE_IDLE "IDLE"
#define RIG_STATE_HOMING "HOMING"
#define RIG_STATE_MOVING "MOVING"
#define RIG_STATE_ESTOP "ESTOP"

/* Error codes (ERR replies, ABORT events, STATUS motion_code). Meanings: PROTOCOL.md. */
#define RIG_ERR_NONE 0
#define RIG_ERR_BAD_CHECKSUM 1
#define RIG_ERR_LINE_TOO_LONG 2
#define RIG_ERR_BAD_SYNTAX 3
#define RIG_ERR_UNKNOWN_COMMAND 4
#define RIG_ERR_BAD_ARGUMENT 5
#define RIG_ERR_VERSION_MISMATCH 6
#define RIG_ERR_NOT_HOMED 7
#define RIG_ERR_OUT_OF_RANGE 8
#define RIG_ERR_BUSY 9
#define RIG_ERR_LIMIT_HIT 10
#define RIG_ERR_WATCHDOG 11
#define RIG_ERR_HOME_FAILED 12
#define RIG_ERR_ESTOP 13
#define RIG_ERR_STOPPED 14

#endif
