#include "stepper_axis.h"

#include <Arduino.h>
#include <math.h>

StepperAxis::StepperAxis(uint8_t step_pin, uint8_t dir_pin, uint8_t dir_positive_level)
    : step_pin_(step_pin), dir_pin_(dir_pin), dir_positive_level_(dir_positive_level),
      step_reg_(nullptr), step_mask_(0) {}

void StepperAxis::begin() {
  pinMode(step_pin_, OUTPUT);
  pinMode(dir_pin_, OUTPUT);
  digitalWrite(step_pin_, LOW);
  digitalWrite(dir_pin_, dir_positive_level_);
  step_reg_ = portOutputRegister(digitalPinToPort(step_pin_));
  step_mask_ = digitalPinToBitMask(step_pin_);
}

void StepperAxis::set_profile(float max_speed, float accel) {
  max_speed_ = max_speed;
  accel_ = accel;
}

void StepperAxis::pulse() {
  // Drivers need >= 1.9 us high (DRV8825); interrupts off so no ISR stretches or splits the pulse.
  uint8_t sreg = SREG;
  cli();
  *step_reg_ |= step_mask_;
  delayMicroseconds(3);
  *step_reg_ &= (uint8_t)~step_mask_;
  SREG = sreg;
}

void StepperAxis::move_to(int32_t target, uint32_t now_us) {
  target_ = target;
  if (target == pos_) {
    active_ = false;
    return;
  }
  dir_ = target > pos_ ? 1 : -1;
  digitalWrite(dir_pin_, dir_ > 0 ? dir_positive_level_ : !dir_positive_level_);
  speed_ = sqrtf(2.0f * accel_);  // speed after the first step from rest
  if (speed_ > max_speed_) speed_ = max_speed_;
  next_us_ = now_us + (uint32_t)(1e6f / speed_);  // also gives the driver its DIR setup time
  active_ = true;
}

void StepperAxis::halt() {
  active_ = false;
  speed_ = 0.0f;
  target_ = pos_;
}

bool StepperAxis::run(uint32_t now_us) {
  if (!active_) return false;
  if ((int32_t)(now_us - next_us_) < 0) return true;
  pulse();
  pos_ += dir_;
  int32_t remaining = target_ - pos_;
  if (remaining < 0) remaining = -remaining;
  if (remaining == 0) {
    active_ = false;
    speed_ = 0.0f;
    return false;
  }
  // v^2 = v0^2 + 2 a s with s = 1 step: speed up, hold, or slow down so that the speed reaches
  // the start speed on the last step.
  float v2 = speed_ * speed_;
  float two_a = 2.0f * accel_;
  if ((float)remaining <= v2 / two_a) {
    v2 -= two_a;
  } else if (speed_ < max_speed_) {
    v2 += two_a;
  }
  if (v2 < two_a) v2 = two_a;
  speed_ = sqrtf(v2);
  if (speed_ > max_speed_) speed_ = max_speed_;
  uint32_t interval = (uint32_t)(1e6f / speed_);
  next_us_ += interval;
  if ((int32_t)(next_us_ - now_us) < 0) next_us_ = now_us + interval;  // late: no catch-up burst
  return true;
}
