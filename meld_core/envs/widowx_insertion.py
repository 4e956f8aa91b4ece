"""MuJoCo cable insertion with the WidowX 200: the simulated twin of the real meld_ros task.

    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv
    env = WidowXInsertionEnv(WidowXInsertionConfig(), seed=0)
    env.set_task(env.train_tasks[0]); obs = env.reset(); obs = env.step(np.zeros(5))

The model is built from the expanded `urdf/meld_scene.urdf.xacro` (the same file robot_state_publisher
uses): MuJoCo loads the URDF, and this module only adds what a URDF cannot say: velocity actuators
(the Dynamixels run in velocity mode), the table, lights, the two cameras on the URDF camera frames,
colours (taken from the URDF's visual materials) and collision groups. The gripper and finger joints
are fixed closed on the plug; the two rig joints are applied by moving the rig's bodies, as the
Arduino rig does between trials.

A step: action in [-1, 1]^5 -> times `action_scale` (rad/s) -> the shared `SafetyFilter` -> the
Dynamixel velocity quantum -> held for one control period (1 / 3.3 Hz) of physics -> reward from
forward kinematics of the measured joints and the goal port's pose (`meld_core.robot.reward`, the
code the real robot uses). The arm's facts (joints, limits, home pose, workspace box) come from the
one robot profile (`meld_core.robot.profile`), as they do for the real arm node. Safety is applied
once per command path: `step`/`step_velocity` filter (the env runs without an arm bridge);
`apply_velocity` does not (behind the simulated ROS graph the arm bridge has already filtered, and
the simulated servos, like xs_sdk's, do not check). Images: the scene camera on top of the wrist camera, each
`image_size` square, no shadows. The goal port is not marked in these images (the agent must infer
it from reward); `render_frame()` marks it for videos.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from meld_core.envs.base import (
    APPLIED_VELOCITY,
    COMMANDED_VELOCITY,
    JOINT_POSITIONS,
    JOINT_VELOCITIES,
    STAMP,
    EnvSpec,
    Observation,
    Task,
)
from meld_core.envs.offscreen import OffscreenRenderer, RenderError  # noqa: F401 (re-exported)
from meld_core.robot.kinematics import ARM_JOINTS, WidowXKinematics
from meld_core.robot.profile import RobotProfile
from meld_core.robot.reward import InsertionGoal, InsertionRewardConfig, RigGeometry, insertion_reward
from meld_core.robot.safety import SafeCommand
from meld_core.robot.urdf import UrdfModel, axis_angle_matrix, expand_xacro

log = logging.getLogger(__name__)

ENV_NAME = "widowx_insertion"
# Dynamixel X-series velocity unit: 0.229 rpm (the driver truncates commands to whole units).
DYNAMIXEL_VELOCITY_UNIT = 0.229 * 2.0 * np.pi / 60.0
# Joints that are held fixed in the simulation: (name, position). The gripper is closed on the plug.
_FIXED_JOINTS = (("gripper", 0.0), ("left_finger", 0.015), ("right_finger", 0.015))
_RIG_JOINTS = ("rig_rail", "rig_rotation")
# Per arm joint: velocity-actuator gain (N m s/rad) and reflected rotor inertia (kg m^2).
_ACTUATOR_KV = (8.0, 8.0, 6.0, 3.0, 0.5)
_ARMATURE = (0.012, 0.012, 0.012, 0.012, 0.004)


@dataclass(frozen=True)
class WidowXInsertionConfig:
    """The WidowX cable-insertion task family. A smoke preset: episode_length=10, num_train_tasks=3,
    num_eval_tasks=2, image_size=32."""

    episode_length: int = 40  # T: control steps per episode (12 s at 3.3 Hz; the reference Sawyer uses 40)
    num_train_tasks: int = 20  # meta-training tasks
    num_eval_tasks: int = 10  # held-out tasks
    task_seed: int = 0  # seeds the task lists (the same seed always gives the same tasks)
    # Train tasks share each router pose among this many ports (1: every train task has a pose of its
    # own). With k > 1 the pose no longer tells the goal port: a policy cannot learn "router here ->
    # port k" by heart for the train tasks, which then fails on new poses; it must find the port from
    # the reward. Held-out tasks always have a pose of their own. num_train_tasks must divide by k.
    train_ports_per_pose: int = 1
    image_size: int = 64  # pixels per side of each camera image; observations are (2*size, size, 3)
    num_ports: int = 4  # Ethernet ports on the router
    port_pitch_m: float = 0.022  # distance between neighbouring ports
    port_clearance_m: float = 0.0015  # gap between plug and port opening on each side
    max_rotation_deg: float = 8.0  # tasks rotate the router uniformly in +-this
    max_translation_mm: float = 10.0  # tasks shift the router uniformly in +-this along the rail
    control_hz: float = 3.3  # control rate (the real arm's)
    physics_timestep: float = 0.01  # s, upper bound on the MuJoCo step (rounded to divide the period)
    action_scale: float = 0.4  # rad/s commanded by an action of 1 (every joint)
    velocity_quantum: float = DYNAMIXEL_VELOCITY_UNIT  # rad/s; commands are truncated to it (0: off)
    reset_noise_rad: float = 0.0  # uniform noise added to the profile's home pose at reset (env seed)
    reward: InsertionRewardConfig = field(default_factory=InsertionRewardConfig)  # shaping, tolerances
    video_size: int = 256  # pixels per camera in render_frame()
    render_supersample: int = 2  # cameras render at this multiple of the size, then are box-averaged
    # (anti-aliasing at about half the CPU cost of MSAA on llvmpipe; 1 = no anti-aliasing)

    def __post_init__(self) -> None:
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {self.episode_length}")
        if self.num_train_tasks < 1 or self.num_eval_tasks < 1:
            raise ValueError("num_train_tasks and num_eval_tasks must be >= 1")
        if not 16 <= self.image_size <= 512 or not 32 <= self.video_size <= 2048:
            raise ValueError(f"image_size must be in [16, 512] and video_size in [32, 2048], got "
                             f"{self.image_size}, {self.video_size}")
        if not 1 <= self.num_ports <= 8:
            raise ValueError(f"num_ports must be in 1..8, got {self.num_ports}")
        k = self.train_ports_per_pose
        if not 1 <= k <= self.num_ports or self.num_train_tasks % k:
            raise ValueError(f"train_ports_per_pose must be in 1..num_ports ({self.num_ports}) and divide "
                             f"num_train_tasks ({self.num_train_tasks}), got {self.train_ports_per_pose}")
        if not 0.012 <= self.port_pitch_m <= 0.05 or not 0.0002 <= self.port_clearance_m <= 0.004:
            raise ValueError("port_pitch_m must be in [0.012, 0.05] and port_clearance_m in [0.0002, 0.004]")
        if self.port_pitch_m - 2 * self.port_clearance_m < 0.012:
            raise ValueError("ports overlap: port_pitch_m must exceed 8 mm plug + 2*clearance + 4 mm wall")
        if not 0 <= self.max_rotation_deg <= 10 or not 0 <= self.max_translation_mm <= 15:
            raise ValueError("max_rotation_deg must be in [0, 10] and max_translation_mm in [0, 15] "
                             "(the rig's range)")
        if not 1 <= self.render_supersample <= 4:
            raise ValueError(f"render_supersample must be in 1..4, got {self.render_supersample}")
        if self.control_hz <= 0 or not 0 < self.physics_timestep <= 0.02:
            raise ValueError("control_hz must be > 0 and physics_timestep in (0, 0.02]")
        if self.action_scale <= 0 or self.velocity_quantum < 0 or self.reset_noise_rad < 0:
            raise ValueError("action_scale must be > 0; velocity_quantum and reset_noise_rad >= 0")
        if isinstance(self.reward, dict):  # rebuilt from YAML
            object.__setattr__(self, "reward", InsertionRewardConfig(**self.reward))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (2 * self.image_size, self.image_size, 3)


def make_tasks(cfg: WidowXInsertionConfig, split: str) -> list[Task]:
    """The seeded task list of a split: ports balanced and shuffled, rotation and translation uniform;
    train tasks share each pose among `train_ports_per_pose` ports (different ones)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    n = cfg.num_train_tasks if split == "train" else cfg.num_eval_tasks
    rng = np.random.default_rng([cfg.task_seed, 0 if split == "train" else 1])
    k = cfg.train_ports_per_pose if split == "train" else 1
    if k == 1:
        ports = rng.permutation(np.arange(n) % cfg.num_ports)
        rotation = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, size=n)
        translation = rng.uniform(-cfg.max_translation_mm, cfg.max_translation_mm, size=n)
    else:  # n // k poses, each with k different ports; each port equally often over the poses
        poses = n // k
        first = rng.permutation(np.arange(poses) % cfg.num_ports)
        ports = ((first[:, None] + np.arange(k)[None, :]) % cfg.num_ports).ravel()
        rotation = np.repeat(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, size=poses), k)
        translation = np.repeat(rng.uniform(-cfg.max_translation_mm, cfg.max_translation_mm, size=poses), k)
        order = rng.permutation(n)
        ports, rotation, translation = ports[order], rotation[order], translation[order]
    return [Task(index=i, split=split, params={"port": int(ports[i]),
                                               "rotation_deg": round(float(rotation[i]), 2),
                                               "translation_mm": round(float(translation[i]), 2)})
            for i in range(n)]


# --- model building ----------------------------------------------------------------------------


def _urdf_colours(urdf_xml: str) -> dict[str, list[list[float]]]:
    """Per link, the RGBA of each collision geometry (from the visual with the same index)."""
    root = ET.fromstring(urdf_xml)
    materials = {}
    for mat in root.iter("material"):
        colour = mat.find("color")
        if colour is not None and mat.get("name"):
            materials[mat.get("name")] = [float(v) for v in colour.get("rgba").split()]
    colours: dict[str, list[list[float]]] = {}
    for link in root.findall("link"):
        visuals = link.findall("visual")
        if len(visuals) != len(link.findall("collision")):
            continue
        rows = []
        for visual in visuals:
            mat = visual.find("material")
            name = mat.get("name") if mat is not None else None
            rows.append(materials.get(name, [0.5, 0.5, 0.5, 1.0]))
        colours[link.get("name")] = rows
    return colours


def _descendants(urdf: UrdfModel, link: str) -> set[str]:
    found = {link}
    changed = True
    while changed:
        changed = False
        for joint in urdf.joints.values():
            if joint.parent in found and joint.child not in found:
                found.add(joint.child)
                changed = True
    return found


def build_model(cfg: WidowXInsertionConfig, urdf_xml: str):
    """Compile the MuJoCo model from the expanded URDF plus the simulation-only additions."""
    import mujoco

    urdf = UrdfModel.from_xml(urdf_xml)
    spec = mujoco.MjSpec.from_string(urdf_xml)
    spec.compiler.fusestatic = False  # keep every URDF frame (plug tip, ports, cameras) as a body
    period = 1.0 / cfg.control_hz
    substeps = int(np.ceil(period / cfg.physics_timestep - 1e-9))
    spec.option.timestep = period / substeps
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.quality.offsamples = 0  # no MSAA: anti-aliasing is done by supersampling
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]

    # Fixed joints: delete them and put their bodies where the joint position would.
    for name, position in _FIXED_JOINTS + tuple((n, 0.0) for n in _RIG_JOINTS):
        joint = urdf.joints[name]
        body = spec.body(joint.child)
        offset = joint.origin[:3, :3] @ (joint.axis * position) if joint.type == "prismatic" else 0.0
        body.pos = np.asarray(body.pos) + offset
        spec.delete(spec.joint(name))
    for eq in list(spec.equalities):  # the fingers' mimic constraint went with the joints
        spec.delete(eq)

    arm_links = _descendants(urdf, "base_link")
    colours = _urdf_colours(urdf_xml)
    for body in spec.bodies:
        if body.name in arm_links and body.name != "base_link":
            body.gravcomp = 1.0  # the Dynamixels hold the arm against gravity
    counters: dict[str, int] = {}
    for geom in spec.geoms:
        link = geom.parent.name
        index = counters.get(link, 0)
        counters[link] = index + 1
        rows = colours.get(link, [])
        geom.rgba = rows[index] if index < len(rows) else [0.5, 0.5, 0.5, 1.0]
        if link.endswith("camera_link") and link.startswith("scene"):
            geom.contype, geom.conaffinity = 0, 0
        elif link in arm_links:
            geom.contype, geom.conaffinity = 1, 0  # arm parts touch the world, not each other
        else:
            geom.contype, geom.conaffinity = 0, 1
        geom.friction = [0.3, 0.005, 0.0001]

    world = spec.worldbody
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.0, 1.0, 0.05],
                   rgba=[0.62, 0.52, 0.40, 1.0], contype=0, conaffinity=1)
    world.add_light(name="top", pos=[0.3, 0.0, 1.5], dir=[0.0, 0.0, -1.0], castshadow=False,
                    type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, diffuse=[0.5, 0.5, 0.5])
    # MuJoCo cameras look along -z with y up: the URDF optical frame rotated by pi about x.
    spec.body("scene_camera_optical_frame").add_camera(name="scene", quat=[0, 1, 0, 0], fovy=42.0)
    spec.body("wrist_camera_optical_frame").add_camera(name="wrist", quat=[0, 1, 0, 0], fovy=75.0)

    # Goal markers for videos only (site group 4 is hidden in the agent's cameras): a red
    # plate lying on the router's top face over each opening.
    router_top = max(g.pos[2] + g.size[2] for g in spec.geoms if g.parent.name == "router_link")
    port_height = urdf.joints["port_0"].origin[2, 3]  # port frames sit below the top face, z down
    open_x = 0.012 + 2 * cfg.port_clearance_m
    open_y = 0.008 + 2 * cfg.port_clearance_m
    for i in range(cfg.num_ports):
        spec.body(f"port_{i}_link").add_site(
            name=f"goal_marker_{i}", type=mujoco.mjtGeom.mjGEOM_BOX, group=4,
            size=[open_x / 2 + 0.004, open_y / 2 + 0.004, 0.0008],
            pos=[0.0, 0.0, -(router_top - port_height) - 0.0005], rgba=[1.0, 0.1, 0.1, 0.0])

    for name, kv, armature in zip(ARM_JOINTS, _ACTUATOR_KV, _ARMATURE):
        joint = urdf.joints[name]
        spec.joint(name).armature = armature
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_velocity(kv=kv)
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-joint.effort, joint.effort]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [-joint.velocity, joint.velocity]
    return spec.compile(), substeps


# --- the environment ---------------------------------------------------------------------------


class WidowXInsertionEnv:
    """`TaskEnv` for WidowX cable insertion in MuJoCo (see the module docstring)."""

    def __init__(self, config: WidowXInsertionConfig | None = None, seed: int = 0) -> None:
        import mujoco

        self.config = cfg = config or WidowXInsertionConfig()
        self.urdf_xml = expand_xacro(num_ports=cfg.num_ports, port_pitch=cfg.port_pitch_m,
                                     port_clearance=cfg.port_clearance_m)
        urdf = UrdfModel.from_xml(self.urdf_xml)
        self.kinematics = WidowXKinematics(urdf)
        self.profile = RobotProfile.from_kinematics(self.kinematics)
        if self.profile.hold_time_s < 1.0 / cfg.control_hz:
            raise ValueError(f"the robot profile's hold_time_s {self.profile.hold_time_s} s is shorter than "
                             f"the control period 1/{cfg.control_hz} Hz: the safety filter would assume "
                             "commands are replaced sooner than they are")
        self.spec = EnvSpec(name=ENV_NAME, image_shape=cfg.image_shape,
                            action_dim=len(self.profile.joint_names), episode_length=cfg.episode_length,
                            control_hz=cfg.control_hz, cameras=("scene", "wrist"),
                            joint_names=tuple(self.profile.joint_names))
        self.rig = RigGeometry(urdf)
        self.safety = self.profile.safety_filter()
        self._mj = mujoco
        self.model, self.substeps = build_model(cfg, self.urdf_xml)
        self.data = mujoco.MjData(self.model)
        self._rng = np.random.default_rng(seed)
        self._train = make_tasks(cfg, "train")
        self._eval = make_tasks(cfg, "eval")

        jid = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in self.joint_names]
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in jid])
        self._vadr = np.array([self.model.jnt_dofadr[j] for j in jid])
        self._rig_bodies = {}
        for name in _RIG_JOINTS:
            joint = urdf.joints[name]
            bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, joint.child)
            self._rig_bodies[name] = (bid, joint, self.model.body_pos[bid].copy())
        self._marker_ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, f"goal_marker_{i}")
                            for i in range(cfg.num_ports)]
        self._renderer = None
        self._video_renderer = None
        self._time_before_reset = 0.0  # simulated seconds of earlier episodes (MuJoCo's clock restarts)
        self.task: Task | None = None
        self._goal = InsertionGoal(port=0)
        self._port_poses: list[np.ndarray] = []
        self.set_task(self._train[0])
        self.reset()

    # --- TaskEnv ------------------------------------------------------------------------------

    @property
    def train_tasks(self) -> Sequence[Task]:
        return self._train

    @property
    def eval_tasks(self) -> Sequence[Task]:
        return self._eval

    def set_task(self, task: Task) -> None:
        goal = InsertionGoal.from_params(task.params)
        if not 0 <= goal.port < self.config.num_ports:
            raise ValueError(f"task {task.describe()} names port {goal.port}; the router has "
                             f"{self.config.num_ports} ports")
        self.task = task
        self._goal = goal
        self.set_rig(goal.rotation_deg, goal.translation_mm)
        for i, site in enumerate(self._marker_ids):
            self.model.site_rgba[site, 3] = 0.85 if i == goal.port else 0.0

    def reset(self) -> Observation:
        mj = self._mj
        self._time_before_reset += self.data.time
        mj.mj_resetData(self.model, self.data)
        q = np.asarray(self.profile.home_q, dtype=float)
        if self.config.reset_noise_rad > 0:
            q = q + self._rng.uniform(-1, 1, size=q.shape) * self.config.reset_noise_rad
        self.data.qpos[self._qadr] = self.kinematics.clip_to_limits(q)
        mj.mj_forward(self.model, self.data)
        _, _, _, info = self._reward()
        return Observation(image=self._image(), info=self._with_joint_state(info))

    def step(self, action: np.ndarray) -> Observation:
        action = np.asarray(action, dtype=float).reshape(-1)
        if action.shape == (self.spec.action_dim,):
            action = np.clip(action, -1.0, 1.0)  # NaN stays NaN: the safety filter zeros it
        commanded = action * self.config.action_scale
        command = self.step_velocity(commanded)
        dense, sparse, success, info = self._reward()
        info["safety_events"] = command.events
        info[COMMANDED_VELOCITY] = commanded.tolist()
        info[APPLIED_VELOCITY] = np.asarray(command.velocity, dtype=float).tolist()
        return Observation(image=self._image(), dense_reward=dense, sparse_reward=sparse, success=success,
                           info=self._with_joint_state(info))

    def render_frame(self) -> np.ndarray:
        """Scene | wrist at `video_size`, side by side, with the goal port marked in red."""
        if self._video_renderer is None:
            self._video_renderer = OffscreenRenderer(self.model, self.config.video_size,
                                                     self.config.render_supersample)
            self._video_renderer.option.sitegroup[4] = 1
        frames = self._video_renderer.render(self.data, ("scene", "wrist"))
        return np.concatenate([frames["scene"], frames["wrist"]], axis=1)

    def close(self) -> None:
        for renderer in (self._renderer, self._video_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._video_renderer = None

    # --- robot-level access (the ROS sim_node uses these) ----------------------------------------

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.profile.joint_names

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Arm joint positions (rad) and velocities (rad/s), in `joint_names` order."""
        return self.data.qpos[self._qadr].copy(), self.data.qvel[self._vadr].copy()

    def camera_images(self) -> dict[str, np.ndarray]:
        """{"scene": (S, S, 3) uint8, "wrist": (S, S, 3) uint8} at `image_size`."""
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.config.image_size,
                                               self.config.render_supersample)
        return self._renderer.render(self.data, ("scene", "wrist"))

    def step_velocity(self, qdot_rad_s: np.ndarray) -> SafeCommand:
        """Apply a joint-velocity command (rad/s) for one control period, through the safety filter
        (the env's own command path: no arm bridge in between).

        Returns what was actually sent (after the filter and the Dynamixel velocity quantum).
        """
        q, _ = self.joint_state()
        command = self.safety.filter(q, qdot_rad_s)
        return SafeCommand(velocity=self.apply_velocity(command.velocity), events=command.events)

    def apply_velocity(self, qdot_rad_s: np.ndarray) -> np.ndarray:
        """Hold a joint-velocity command (rad/s) for one control period as the servos would: no
        safety filter (the arm bridge owns it on the ROS path), the Dynamixel velocity quantum, the
        actuators' velocity range. Returns the velocity sent to the actuators."""
        velocity = np.asarray(qdot_rad_s, dtype=float).reshape(-1)
        if velocity.shape != (len(self.joint_names),):
            raise ValueError(f"{len(self.joint_names)} joint velocities expected, got {velocity.shape}")
        quantum = self.config.velocity_quantum
        if quantum > 0:
            velocity = np.trunc(velocity / quantum) * quantum
        self.data.ctrl[:] = velocity
        for _ in range(self.substeps):
            self._mj.mj_step(self.model, self.data)
        self._mj.mj_forward(self.model, self.data)  # body poses of the final state, for the cameras
        return velocity

    def set_rig(self, rotation_deg: float, translation_mm: float) -> None:
        """Move the reset rig (router yaw in degrees, rail shift in mm) and update the port goals."""
        lo_r, hi_r = self.rig.rotation_limits_deg
        lo_t, hi_t = self.rig.translation_limits_mm
        if not (lo_r <= rotation_deg <= hi_r and lo_t <= translation_mm <= hi_t):
            raise ValueError(f"rig pose ({rotation_deg} deg, {translation_mm} mm) is outside the rig's "
                             f"range [{lo_r:.1f}, {hi_r:.1f}] deg x [{lo_t:.1f}, {hi_t:.1f}] mm")
        positions = self.rig.joint_positions(rotation_deg, translation_mm)
        for name, (bid, joint, pos0) in self._rig_bodies.items():
            value = positions[name]
            if joint.type == "prismatic":
                self.model.body_pos[bid] = pos0 + joint.origin[:3, :3] @ joint.axis * value
            else:
                quat = np.zeros(4)
                rotation = joint.origin[:3, :3] @ axis_angle_matrix(joint.axis, value)
                self._mj.mju_mat2Quat(quat, rotation.ravel())
                self.model.body_quat[bid] = quat
        self._goal = InsertionGoal(self._goal.port, rotation_deg, translation_mm)
        self._port_poses = [self.rig.port_pose(self._goal, i) for i in range(self.rig.num_ports)]
        self._mj.mj_forward(self.model, self.data)

    @property
    def goal(self) -> InsertionGoal:
        return self._goal

    def goal_port_pose(self) -> np.ndarray:
        """4x4 pose of the goal port in base_link (for oracles and tests)."""
        return self._port_poses[self._goal.port].copy()

    def plug_pose(self) -> np.ndarray:
        """4x4 pose of the plug tip in base_link from forward kinematics of the measured joints."""
        return self.kinematics.tool_pose(self.joint_state()[0])

    # --- internals ------------------------------------------------------------------------------

    def _with_joint_state(self, info: dict) -> dict:
        """`info` plus the per-frame state of the TaskEnv convention (stamp = simulated time)."""
        q, qdot = self.joint_state()
        info.update({STAMP: self._time_before_reset + float(self.data.time), JOINT_POSITIONS: q.tolist(),
                     JOINT_VELOCITIES: qdot.tolist()})
        return info

    def _image(self) -> np.ndarray:
        images = self.camera_images()
        return np.concatenate([images["scene"], images["wrist"]], axis=0)

    def _reward(self) -> tuple[float, float, bool, dict]:
        plug = self.plug_pose()
        dense, sparse, success, info = insertion_reward(plug, self._port_poses[self._goal.port],
                                                        self.config.reward)
        inserted = -1
        for i, port in enumerate(self._port_poses):
            if insertion_reward(plug, port, self.config.reward)[2]:
                inserted = i
                break
        info.update(inserted_port=inserted, goal_port=self._goal.port)
        return dense, sparse, success, info
