"""WidowX kinematics (read from the URDF), the safety filter and the insertion reward."""
