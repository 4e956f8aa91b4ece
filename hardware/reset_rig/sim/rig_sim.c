/*
 * rig_sim: runs the reset-rig firmware in simavr as if it sat in the rig.
 *
 *   make -C hardware/reset_rig all sim
 *   hardware/reset_rig/build/rig_sim hardware/reset_rig/build/reset_rig.elf
 *
 * - The ATmega328P UART is bridged to a pseudo-terminal; the first stdout line is "PTY <path>".
 *   The bridge runs in the simulation loop and feeds bytes only while the simulated UART's input
 *   FIFO has room (XON/XOFF), like a USB-serial chip. (simavr 1.6's own uart_pty part stops
 *   delivering input for good after a burst of more than ~512 bytes, which a noise test sends.)
 * - Each axis integrates the STEP pulses (direction from DIR, ignored while ENABLE is high) into a
 *   simulated position, and its limit-switch input reads HIGH (pressed) while the position is at or
 *   below the switch position, LOW otherwise (normally-closed switch to GND).
 * - The emergency-stop input is held LOW (released) unless told otherwise.
 * - Simulated time is throttled to wall time (times --speed), so step rates and the firmware's
 *   host-silence watchdog behave as on the bench; the simulation never runs ahead of the clock and
 *   drops debt when it falls behind (no fast catch-up bursts).
 *
 * Control lines on stdin, answered on stdout:
 *   COUNT              -> COUNT <rot_pos> <rot_pulses> <trans_pos> <trans_pulses> <enabled>
 *                               <pulses_while_disabled> <sim_ms>
 *   ESTOP <0|1>        -> OK      press (1) or release (0) the emergency stop
 *   JAM <rot|trans> <0|1> -> OK   a jammed switch never reports pressed (homing must fail)
 *   PLACE <rot|trans> <pos> -> OK the axis is moved by hand to a step position
 * End of stdin (the parent went away) ends the program, unless --serve is given: then stdin is not
 * read at all and the program runs until it is killed (for trying the CLI by hand).
 * Default switch positions suit the default calibration (one step below -9.5 deg and -11.5 mm).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <pty.h>
#include <termios.h>

#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"

/* Pins of hardware/reset_rig/firmware/rig_config.h on the ATmega328P ports. */
#define STEP_PORT 'D'
#define ROT_STEP_BIT 2
#define TRANS_STEP_BIT 3
#define ROT_DIR_BIT 5
#define TRANS_DIR_BIT 6
#define ENABLE_PORT 'B'
#define ENABLE_BIT 0
#define LIMIT_PORT 'B'
#define ROT_LIMIT_BIT 1
#define TRANS_LIMIT_BIT 2
#define ESTOP_PORT 'C'
#define ESTOP_BIT 0

typedef struct {
  const char *name;
  long pos, pulses, switch_pos;
  int dir_level, jammed, switch_level;
  avr_irq_t *switch_irq;
} axis_t;

static avr_t *avr;
static int pty_master = -1, pty_slave = -1;
static int uart_xon = 1;
static avr_irq_t *uart_input;
static uint8_t rx_pending[256];
static size_t rx_len, rx_done;
static axis_t axes[2] = {{.name = "rot", .switch_pos = -254}, {.name = "trans", .switch_pos = -921}};
static int enable_level = 1; /* drivers start disabled (pin high through the driver's pull-up) */
static long pulses_while_disabled;
static avr_irq_t *estop_irq;

static int estop_level;

/* Drive the inputs. SET_EXTERNAL makes the level survive the firmware enabling the pin's pull-up
 * (simavr otherwise reads the PORT bit back as the pin level); the raise delivers the edge. */
static void drive_inputs(void) {
  avr_ioport_external_t b = {.name = LIMIT_PORT, .mask = (1 << ROT_LIMIT_BIT) | (1 << TRANS_LIMIT_BIT),
                             .value = (axes[0].switch_level << ROT_LIMIT_BIT) |
                                      (axes[1].switch_level << TRANS_LIMIT_BIT)};
  avr_ioport_external_t c = {.name = ESTOP_PORT, .mask = 1 << ESTOP_BIT, .value = estop_level << ESTOP_BIT};
  avr_ioctl(avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(LIMIT_PORT), &b);
  avr_ioctl(avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(ESTOP_PORT), &c);
  avr_raise_irq(axes[0].switch_irq, axes[0].switch_level);
  avr_raise_irq(axes[1].switch_irq, axes[1].switch_level);
  avr_raise_irq(estop_irq, estop_level);
}

static void update_switch(axis_t *a) {
  int level = (!a->jammed && a->pos <= a->switch_pos) ? 1 : 0;
  if (level != a->switch_level) {
    a->switch_level = level;
    drive_inputs();
  }
}

static void on_step(struct avr_irq_t *irq, uint32_t value, void *param) {
  axis_t *a = param;
  if (!value || irq->value == value) return; /* rising edges only */
  if (enable_level) {
    pulses_while_disabled++;
    return;
  }
  a->pulses++;
  a->pos += a->dir_level ? 1 : -1; /* DIR high = positive (ROT/TRANS_DIR_POSITIVE_LEVEL 1) */
  update_switch(a);
}

static void on_dir(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  ((axis_t *)param)->dir_level = value ? 1 : 0;
}

static void on_enable(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)param;
  enable_level = value ? 1 : 0;
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sim_s(void) { return (double)avr->cycle / avr->frequency; }

static void handle_control(char *line) {
  char word[16], arg[16];
  int value = 0;
  int n = sscanf(line, "%15s %15s %d", word, arg, &value);
  if (n >= 1 && strcmp(word, "COUNT") == 0) {
    printf("COUNT %ld %ld %ld %ld %d %ld %.0f\n", axes[0].pos, axes[0].pulses, axes[1].pos, axes[1].pulses,
           !enable_level, pulses_while_disabled, sim_s() * 1000.0);
  } else if (n == 2 && strcmp(word, "ESTOP") == 0) {
    estop_level = atoi(arg) ? 1 : 0;
    drive_inputs();
    printf("OK\n");
  } else if (n == 3 && strcmp(word, "JAM") == 0 && (!strcmp(arg, "rot") || !strcmp(arg, "trans"))) {
    axis_t *a = &axes[strcmp(arg, "rot") == 0 ? 0 : 1];
    a->jammed = value;
    update_switch(a);
    printf("OK\n");
  } else if (n == 3 && strcmp(word, "PLACE") == 0 && (!strcmp(arg, "rot") || !strcmp(arg, "trans"))) {
    axis_t *a = &axes[strcmp(arg, "rot") == 0 ? 0 : 1];
    a->pos = value;
    update_switch(a);
    printf("OK\n");
  } else {
    printf("ERROR unknown control line: %s\n", line);
  }
}

/* Read whatever arrived on stdin without blocking; returns 0 at end of input. */
static int poll_stdin(void) {
  static char buf[256];
  static size_t len;
  struct pollfd p = {.fd = 0, .events = POLLIN};
  while (poll(&p, 1, 0) > 0) {
    if (p.revents & (POLLHUP | POLLERR) && !(p.revents & POLLIN)) return 0;
    ssize_t r = read(0, buf + len, sizeof(buf) - 1 - len);
    if (r <= 0) return r < 0 && errno == EINTR;
    len += r;
    char *nl;
    while ((nl = memchr(buf, '\n', len)) != NULL) {
      *nl = '\0';
      handle_control(buf);
      size_t used = nl - buf + 1;
      memmove(buf, nl + 1, len - used);
      len -= used;
    }
    if (len == sizeof(buf) - 1) len = 0; /* an absurd line: drop it */
  }
  return 1;
}

/* ---- UART <-> pty bridge -------------------------------------------------------------------- */

static void on_uart_output(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)param;
  uint8_t byte = (uint8_t)value;
  if (write(pty_master, &byte, 1) < 0) { /* nobody reading and the pty buffer is full: dropped */
  }
}

static void on_uart_xon(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)value;
  (void)param;
  uart_xon = 1;
}

static void on_uart_xoff(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)value;
  (void)param;
  uart_xon = 0;
}

/* Move host bytes into the simulated UART while its input FIFO has room. */
static void feed_uart(void) {
  while (uart_xon) {
    if (rx_done == rx_len) {
      ssize_t r = read(pty_master, rx_pending, sizeof(rx_pending));
      if (r <= 0) return; /* nothing waiting (EAGAIN), or the host closed its side (EIO) */
      rx_len = (size_t)r;
      rx_done = 0;
    }
    avr_raise_irq(uart_input, rx_pending[rx_done++]);
  }
}

static void open_bridge(void) {
  char name[128];
  struct termios tio;
  if (openpty(&pty_master, &pty_slave, name, NULL, NULL) != 0) {
    perror("rig_sim: openpty");
    exit(1);
  }
  tcgetattr(pty_slave, &tio);
  cfmakeraw(&tio);
  tcsetattr(pty_slave, TCSANOW, &tio); /* keep pty_slave open: the master never sees a hang-up */
  fcntl(pty_master, F_SETFL, fcntl(pty_master, F_GETFL) | O_NONBLOCK);

  uint32_t flags = 0;
  avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
  flags &= ~AVR_UART_FLAG_STDIO; /* no copy of the UART output on our stdout */
  avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
  uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_output, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_uart_xon, NULL);
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_uart_xoff, NULL);
  printf("PTY %s\n", name);
}

static avr_irq_t *pin_irq(char port, int bit) { return avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(port), bit); }

static void usage(void) {
  fprintf(stderr,
          "usage: rig_sim [--speed F] [--rot-switch N] [--trans-switch N] [--rot-start N] [--trans-start N]\n"
          "               [--estop 0|1] [--serve] firmware.elf\n");
  exit(2);
}

int main(int argc, char **argv) {
  double speed = 1.0;
  int estop = 0, serve = 0;
  const char *elf = NULL;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 < argc && !strcmp(o, "--speed")) speed = atof(argv[++i]);
    else if (i + 1 < argc && !strcmp(o, "--rot-switch")) axes[0].switch_pos = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(o, "--trans-switch")) axes[1].switch_pos = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(o, "--rot-start")) axes[0].pos = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(o, "--trans-start")) axes[1].pos = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(o, "--estop")) estop = atoi(argv[++i]);
    else if (!strcmp(o, "--serve")) serve = 1;
    else if (o[0] == '-') usage();
    else elf = o;
  }
  if (!elf) usage();
  setvbuf(stdout, NULL, _IOLBF, 0);

  elf_firmware_t fw;
  memset(&fw, 0, sizeof(fw));
  if (elf_read_firmware(elf, &fw) != 0) {
    fprintf(stderr, "rig_sim: cannot read %s (build it with: make -C hardware/reset_rig)\n", elf);
    return 1;
  }
  strcpy(fw.mmcu, "atmega328p"); /* our ELF carries no .mmcu section */
  fw.frequency = 16000000;
  avr = avr_make_mcu_by_name(fw.mmcu);
  if (!avr || avr_init(avr) != 0) {
    fprintf(stderr, "rig_sim: simavr has no atmega328p\n");
    return 1;
  }
  avr->log = LOG_ERROR;
  avr_load_firmware(avr, &fw);

  avr_irq_register_notify(pin_irq(STEP_PORT, ROT_STEP_BIT), on_step, &axes[0]);
  avr_irq_register_notify(pin_irq(STEP_PORT, TRANS_STEP_BIT), on_step, &axes[1]);
  avr_irq_register_notify(pin_irq(STEP_PORT, ROT_DIR_BIT), on_dir, &axes[0]);
  avr_irq_register_notify(pin_irq(STEP_PORT, TRANS_DIR_BIT), on_dir, &axes[1]);
  avr_irq_register_notify(pin_irq(ENABLE_PORT, ENABLE_BIT), on_enable, NULL);
  axes[0].switch_irq = pin_irq(LIMIT_PORT, ROT_LIMIT_BIT);
  axes[1].switch_irq = pin_irq(LIMIT_PORT, TRANS_LIMIT_BIT);
  estop_irq = pin_irq(ESTOP_PORT, ESTOP_BIT);
  estop_level = estop ? 1 : 0;
  for (int i = 0; i < 2; i++) axes[i].switch_level = (axes[i].pos <= axes[i].switch_pos) ? 1 : 0;
  drive_inputs();

  open_bridge();

  const avr_cycle_count_t check_every = avr->frequency / 1000; /* each simulated millisecond */
  avr_cycle_count_t next_check = check_every;
  double wall0 = wall_s(), sim0 = 0.0;
  for (;;) {
    int state = avr_run(avr);
    if (state == cpu_Done || state == cpu_Crashed) {
      fprintf(stderr, "rig_sim: the firmware stopped (state %d)\n", state);
      break;
    }
    if (avr->cycle < next_check) continue;
    next_check = avr->cycle + check_every;
    feed_uart();
    if (!serve && !poll_stdin()) break;
    if (speed > 0) {
      double ahead = (sim_s() - sim0) / speed - (wall_s() - wall0);
      if (ahead > 0.0005) {
        usleep((useconds_t)(ahead * 1e6));
      } else if (ahead < -0.05) { /* fell behind (loaded machine): drop the debt */
        wall0 = wall_s();
        sim0 = sim_s();
      }
    }
  }
  fflush(stdout);
  _exit(0);
}
