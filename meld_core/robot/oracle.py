"""A scripted insertion expert that knows the goal: inverse kinematics plus a joint-velocity servo.

    oracle = InsertionOracle(kin, control_hz=3.3, action_scale=0.4, velocity_quantum=0.024)
    oracle.reset()
    action = oracle.act(q_measured, goal_port_pose)     # in [-1, 1]^5, for TaskEnv.step

It proves that the task is solvable through the same action interface the learner uses (including
the control rate, the action scale and the Dynamixel velocity quantum), and that reward and success
agree. Phases: `approach` (plug tip above the port, aligned with it), then `insert` (straight down
the port axis); it returns to `approach` if the tip drifts off the axis before entering the port.
"""

from __future__ import annotations

import numpy as np

from meld_core.robot.kinematics import TOOL_LINK, WidowXKinematics, rotation_angle


class InsertionOracle:
    """Velocity servo towards IK solutions for a pre-insertion pose, then the inserted pose."""

    def __init__(self, kinematics: WidowXKinematics, control_hz: float, action_scale: float,
                 velocity_quantum: float = 0.0, *, approach_height: float = 0.027, overshoot: float = 0.002,
                 gain: float = 0.9, align_lateral: float = 0.0011, align_angle_deg: float = 2.0) -> None:
        if control_hz <= 0 or action_scale <= 0 or velocity_quantum < 0 or not 0 < gain <= 1.5:
            raise ValueError("need control_hz > 0, action_scale > 0, velocity_quantum >= 0, gain in (0, 1.5]")
        self.kin = kinematics
        self.period = 1.0 / control_hz
        self.action_scale = action_scale
        self.quantum = velocity_quantum
        self.approach_height = approach_height  # m above the goal point (port frame -z) to line up
        self.overshoot = overshoot  # m past the goal point that the insert phase aims at
        self.gain = gain  # fraction of the joint error removed per control period
        self.align_lateral = align_lateral  # m: max off-axis offset (per port axis) to start inserting
        self.align_angle = np.radians(align_angle_deg)
        self.phase = "approach"

    def reset(self) -> None:
        self.phase = "approach"

    def _target(self, port_pose: np.ndarray, depth: float) -> np.ndarray:
        target = port_pose.copy()
        target[:3, 3] = port_pose[:3, 3] + port_pose[:3, 2] * depth  # port z points into the port
        return target

    def act(self, q: np.ndarray, port_pose: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        tip = self.kin.forward(q, TOOL_LINK)
        local = port_pose[:3, :3].T @ (tip[:3, 3] - port_pose[:3, 3])
        lateral = float(np.max(np.abs(local[:2])))
        angle = rotation_angle(tip[:3, :3].T @ port_pose[:3, :3])
        above = local[2] < -(self.approach_height - 0.003)
        if self.phase == "approach" and above and lateral < self.align_lateral and angle < self.align_angle:
            self.phase = "insert"
        elif self.phase == "insert" and local[2] < -0.013 and lateral > 3 * self.align_lateral:
            self.phase = "approach"  # drifted off the axis before entering the port
        depth = -self.approach_height if self.phase == "approach" else self.overshoot
        if self.phase == "approach" and lateral > 0.01 and local[2] > -self.approach_height:
            depth = -self.approach_height - 0.01  # come from above, never sideways over the router
        target = self._target(port_pose, depth)
        ik = self.kin.inverse(target, q, TOOL_LINK, max_iterations=100)
        velocity = self.gain * (ik.q - q) / self.period
        peak = np.max(np.abs(velocity))
        if peak > self.action_scale:
            velocity *= self.action_scale / peak  # keep the joint-space direction
        if self.quantum > 0:
            velocity = self._quantize(q, velocity, target)
        return np.clip(velocity / self.action_scale, -1.0, 1.0)

    def _quantize(self, q: np.ndarray, velocity: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Whole numbers of velocity quanta (the driver truncates), chosen by predicted tip error.

        Far from the target, rounding is enough. Close to it, one quantum per period moves the tip
        by millimetres, so every floor/ceil combination is tried and the one whose predicted tip
        pose is closest to the target wins.
        """
        steps = velocity / self.quantum
        k = np.round(steps)
        if np.max(np.abs(steps)) <= 4:
            best = np.inf
            lows = np.floor(steps)
            for mask in range(1 << len(steps)):
                cand = lows + np.array([(mask >> i) & 1 for i in range(len(steps))])
                pose = self.kin.forward(q + cand * self.quantum * self.period, TOOL_LINK)
                cost = (np.linalg.norm(pose[:3, 3] - target[:3, 3])
                        + 0.03 * rotation_angle(pose[:3, :3].T @ target[:3, :3]))
                if cost < best:
                    best, k = cost, cand
        # Ask for half a quantum more than wanted, so truncation lands on the whole number.
        return (k + 0.5 * np.sign(k)) * self.quantum
