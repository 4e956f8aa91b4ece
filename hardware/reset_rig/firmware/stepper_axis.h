/*
 * One stepper axis driven through a STEP/DIR driver (A4988, DRV8825, TMC2208 in STEP/DIR mode):
 * non-blocking trapezoidal motion. Call run() as often as possible from loop(); it emits at most
 * one step per call when that step is due, accelerating, cruising and decelerating so that the
 * axis stops exactly on the target.
 */
#ifndef STEPPER_AXIS_H
#define STEPPER_AXIS_H

#include <stdint.h>

class StepperAxis {
 public:
  StepperAxis(uint8_t step_pin, uint8_t dir_pin, uint8_t dir_positive_level);
  void begin();
  /* Speed limit (steps/s) and acceleration (steps/s^2) for the next move_to(). */
  void set_profile(float max_speed, float accel);
  /* Start moving to an absolute step position (the axis must be at rest). */
  void move_to(int32_t target, uint32_t now_us);
  /* Stop at once: no further step pulse. */
  void halt();
  /* Emit the next step if due. Returns true while the axis is moving. */
  bool run(uint32_t now_us);
  bool moving() const { return active_; }
  int8_t direction() const { return dir_; }
  int32_t position() const { return pos_; }
  void set_position(int32_t pos) { pos_ = pos; }

 private:
  void pulse();
  uint8_t step_pin_, dir_pin_, dir_positive_level_;
  volatile uint8_t* step_reg_;
  uint8_t step_mask_;
  int32_t pos_ = 0, target_ = 0;
  int8_t dir_ = 0;
  bool active_ = false;
  float speed_ = 0.0f, max_speed_ = 1.0f, accel_ = 1.0f;
  uint32_t next_us_ = 0;
};

#endif
