"""The learner and actor: `meld_core.train.trainer` on the robot (or the simulated robot) through ROS.

    ros2 run meld_ros agent_node --ros-args -p mode:=train -p run_dir:=runs/widowx -p preset:=small
    ros2 run meld_ros agent_node --ros-args -p mode:=eval -p run_dir:=runs/widowx -p eval_rounds:=3

Train mode calls `meld_core.train.trainer.run_training` (the loop behind `meld train`, same run
directory: config.yaml, episodes/, checkpoints/, tb/, eval/), eval mode calls
`meld_core.train.evaluation.evaluate_run` (behind `meld eval`), both with a TaskEnv over ROS
(`meld_core.bridge.remote_env.RemoteRobotEnv` + `meld_ros.ros_env.RosRobotLink`). The trainer runs in
its own thread, started once the executor spins; ROS callbacks run in a MultiThreadedExecutor with
explicit callback groups (inputs reentrant, service clients and diagnostics separate).
SIGINT/SIGTERM asks the trainer to stop after the running episode (it checkpoints), while the
executor keeps spinning so that episode can finish; a second signal aborts.
"""

from __future__ import annotations

import json
import threading
import time
import traceback

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from meld_core.bridge.agent_run import AgentRunConfig, remote_env_factory, training_config
from meld_core.bridge.remote_env import RemoteEnvConfig
from meld_core.hardware.diagnostics import DiagLevel, DiagStatus
from meld_core.robot.kinematics import ARM_JOINTS
from meld_core.train.hooks import TrainerHooks
from meld_ros.common import declare_config, diagnostic_array, to_diagnostic
from meld_ros.ros_env import RosRobotLink

# After a stop request, the running episode gets this long to finish before the link's waits abort
# (the launch's sigterm_timeout for agent_node is 30 s: the checkpoint must fit in the rest).
STOP_GRACE_S = 10.0


class _ProgressHooks(TrainerHooks):
    """Trainer hooks that log progress lines (the launch test waits for them)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def on_phase(self, trainer, phase: str) -> None:
        self.node.get_logger().info(f"trainer phase: {phase}")

    def on_iteration(self, trainer) -> None:
        c = trainer.counters
        self.node.get_logger().info(
            f"training iteration {c.iteration} complete ({c.episodes} episodes, {c.env_steps} env steps, "
            f"{c.model_steps} model steps, {c.ac_steps} AC steps)"
        )

    def on_eval(self, trainer, result) -> None:
        self.node.get_logger().info(f"evaluation: success per episode position {result.success_per_position}")

    def on_checkpoint(self, trainer, path) -> None:
        self.node.get_logger().info(f"checkpoint written: {path}")


class AgentNode(Node):
    def __init__(self) -> None:
        super().__init__("agent")
        self.config: AgentRunConfig
        self.io: RemoteEnvConfig
        self.config, self.io = declare_config(self, "agent_node")
        cfg = self.config
        self.link = RosRobotLink(
            self,
            robot_name=cfg.robot_name,
            joint_names=ARM_JOINTS,
            scene_topic=cfg.scene_topic,
            wrist_topic=cfg.wrist_topic,
            use_success_topic=self.io.use_success_topic,
        )
        self.progress_pub = self.create_publisher(String, "/meld/agent/progress", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        side = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0, self._report, callback_group=side)
        self.trainer = None
        self.result: str = "running"
        self.error = ""
        self.finished = threading.Event()
        self.stopping = False
        self._thread: threading.Thread | None = None
        self._start_timer = self.create_timer(0.5, self._start, callback_group=side)

    # ------------------------------------------------------------------ the trainer thread
    def _start(self) -> None:
        self._start_timer.cancel()
        self._thread = threading.Thread(target=self._run, name="meld-trainer", daemon=True)
        self._thread.start()

    def _wait_for_inputs(self) -> None:
        deadline = time.monotonic() + self.config.inputs_timeout_s
        missing = ["scene", "wrist", "joint_state"]
        while time.monotonic() < deadline:
            missing = [c for c in ("scene", "wrist") if self.link.latest_image(c) is None]
            if self.link.latest_joint_state() is None:
                missing.append("joint_state")
            if not missing and self.link.home_client.service_is_ready():
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"no {', '.join(missing) or '/meld/arm/home service'} within "
            f"{self.config.inputs_timeout_s:.0f} s: are the cameras, xs_sdk (or sim_node) and "
            "arm_node running?"
        )

    def _run(self) -> None:
        from meld_core.train.evaluation import evaluate_run
        from meld_core.train.trainer import run_training

        cfg = self.config
        log = self.get_logger()
        try:
            self._wait_for_inputs()
            factory = remote_env_factory(self.link, self.io)
            device = None if cfg.device == "auto" else cfg.device
            if cfg.mode == "train":
                run_config = training_config(cfg)
                log.info(
                    f"training {run_config.env} (preset {run_config.preset}) in {cfg.run_dir}"
                    f"{' (resume)' if cfg.resume else ''}"
                )
                trainer = run_training(
                    run_config,
                    cfg.run_dir,
                    env_factory=factory,
                    resume=cfg.resume,
                    device=device,
                    hooks=[_ProgressHooks(self)],
                    progress_bars=False,
                    trainer_callback=self._set_trainer,
                )
                c = trainer.counters
                log.info(
                    f"training finished: {c.iteration} iterations, {c.episodes} episodes, "
                    f"{c.env_steps} env steps"
                )
            else:
                result, summary = evaluate_run(
                    cfg.run_dir,
                    episodes_per_trial=cfg.eval_episodes_per_trial or None,
                    rounds=cfg.eval_rounds,
                    checkpoint=cfg.eval_checkpoint or None,
                    device=device,
                    video_trials=cfg.eval_videos,
                    env_factory=factory,
                )
                log.info("meta-test results:\n" + result.table())
            self.result = "done"
        except Exception as exc:
            if self.stopping:
                self.result = "stopped"
                log.warning(
                    f"stopped during shutdown ({type(exc).__name__}: {exc}); the interrupted episode is "
                    "lost, the run resumes from its last checkpoint (resume:=true)"
                )
            else:
                self.result = "failed"
                self.error = f"{type(exc).__name__}: {exc}"
                log.error(f"agent failed: {self.error}\n{traceback.format_exc()}")
        finally:
            self.link.stop_arm()
            self.finished.set()

    def _set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def request_stop(self) -> None:
        self.stopping = True
        if self.trainer is not None:
            self.trainer.request_stop()

    # ------------------------------------------------------------------ reporting
    def _report(self) -> None:
        progress = self.trainer.progress() if self.trainer is not None else {}
        progress.update(result=self.result, mode=self.config.mode)
        if self.error:
            progress["error"] = self.error
        self.progress_pub.publish(String(data=json.dumps(progress, default=str)))
        values = {k: str(v) for k, v in progress.items()}
        if self.result == "failed":
            status = DiagStatus(DiagLevel.ERROR, self.error, values)
        else:
            status = DiagStatus(DiagLevel.OK, f"{self.config.mode}: {self.result}", values)
        self.diag_pub.publish(
            diagnostic_array(
                self, [to_diagnostic(f"{self.get_name()}: learner", self.config.run_dir, status)]
            )
        )


def main(args=None) -> int:
    """Spin until the trainer finishes (or a signal stops it); exit 0 on success, 1 on failure."""
    import signal

    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    interrupts = []

    def _on_signal(signum, frame):
        # Ctrl-C in a terminal reaches this process twice within milliseconds (from the terminal and
        # from ros2 launch): count signals less than 2 s apart as one.
        now = time.monotonic()
        if interrupts and now - interrupts[-1] > 2.0:
            raise KeyboardInterrupt
        interrupts.append(now)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    executor = MultiThreadedExecutor(num_threads=4)
    node = None
    code = 0
    try:
        node = AgentNode()
        executor.add_node(node)
        abort_at = None
        while not (node.finished.is_set() and node.config.shutdown_when_done):
            executor.spin_once(timeout_sec=0.1)
            if interrupts and abort_at is None:
                node.get_logger().warning(
                    f"stopping after the running episode (<= {STOP_GRACE_S:.0f} s; signal again to abort)")
                node.request_stop()
                abort_at = time.monotonic() + STOP_GRACE_S
                if node.trainer is None:
                    break
            if abort_at is not None:
                if node.finished.is_set():
                    break
                if time.monotonic() > abort_at:
                    # The rest of the graph is usually stopping too: do not wait for a robot that is gone.
                    node.link.abort()
        if node._thread is not None:
            node._thread.join(timeout=10.0)
        code = 0 if node.result != "failed" else 1
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 130
    except Exception as exc:
        print(f"[FATAL] agent_node: {type(exc).__name__}: {exc}", flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C arrives twice (terminal + launch)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if node is not None:
            node.link.abort()
            node.link.stop_arm()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
