"""Deterministic fakes shipped with the product (used by tests, demos and the ROS layer's tests)."""
