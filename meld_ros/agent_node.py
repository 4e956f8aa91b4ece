"""The learner and actor: `meld_core.train.trainer` on the robot (or the simulated robot) through ROS.

    ros2 run meld_ros agent_node --ros-args -p mode:=train -p run_dir:=runs/widowx -p preset:=small
    ros2 run meld_ros agent_node --ros-args -p mode:=eval -p run_dir:=runs/widowx -p eval_rounds:=3

Train mode calls `meld_core.train.trainer.run_training` (the loop behind `meld train`, same run
directory: config.yaml, episodes/, checkpoints/, tb/, eval/), eval mode calls
`meld_core.train.evaluation.evaluate_run` (behind `meld eval`), both with a TaskEnv over ROS
(`meld_core.bridge.remote_env.RemoteRobotEnv` + `meld_ros.ros_env.RosRobotLink`). The trainer runs in
its own thread, started once the executor spins; ROS callbacks run in a MultiThreadedExecutor with
explicit callback groups (inputs reentrant, service clients and diagnostics separate). Progress
(warm-up episodes included) goes to the console and to `meld/agent/progress` (JSON) at every
episode and every second (`meld_core.bridge.agent_run.AgentProgressHook`).

SIGINT/SIGTERM asks the trainer to stop (`meld_core.bridge.shutdown.StopSignals`): the running
episode finishes if the robot graph is still up, or ends with the graph's first failure (it is then
dropped); either way a checkpoint is written and the node exits. The stop needs neither the arm nor
the cameras, so it holds when Ctrl-C stops every node of the launch at once. A signal after the
first 2 s aborts (launch's SIGTERM after its 30 s timeout).

`train_mode:=async` splits training (meld_core.train.async_mode): this node is the actor (the robot
never waits for gradient steps), a learner process beside it trains from the run directory. meld_core's
warnings, each control-tick overrun among them, go to this node's log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from meld_core.bridge import names
from meld_core.bridge.agent_run import (
    AgentProgressHook,
    AgentRunConfig,
    remote_env_factory,
    training_config,
)
from meld_core.bridge.link_waits import inputs_silent, wait_for_inputs
from meld_core.bridge.remote_env import RemoteEnvConfig
from meld_core.hardware.diagnostics import DiagLevel, DiagStatus
from meld_core.robot.kinematics import ARM_JOINTS
from meld_ros.common import (
    SPIN_PERIOD_S,
    declare_config,
    diagnostic_array,
    exit_code,
    finish,
    start_ros,
    to_diagnostic,
)
from meld_ros.ros_env import RosRobotLink

# After a stop request, the running episode gets this long to finish before the link's waits abort
# (the launch's sigterm_timeout for agent_node is 30 s: the checkpoint must fit in the rest) ...
STOP_GRACE_S = 10.0
# ... unless the robot graph is gone (no joint state for this long): then they abort at once.
GRAPH_GONE_S = 1.0


class _RosLog(logging.Handler):
    """meld_core's warnings and errors (each control-tick overrun of RemoteRobotEnv, say) in this log."""

    def __init__(self, node: Node) -> None:
        super().__init__(logging.WARNING)
        self.node = node

    def emit(self, record: logging.LogRecord) -> None:
        log = self.node.get_logger()
        write = log.error if record.levelno >= logging.ERROR else log.warning
        write(f"{record.name}: {record.getMessage()}")


class AgentNode(Node):
    def __init__(self) -> None:
        super().__init__("agent")
        logging.getLogger("meld_core").addHandler(_RosLog(self))
        self.config: AgentRunConfig
        self.io: RemoteEnvConfig
        self.config, self.io = declare_config(self, "agent_node")
        cfg = self.config
        self.link = RosRobotLink(
            self,
            robot_name=cfg.robot_name,
            joint_names=ARM_JOINTS,
            rig_tolerance=(self.io.rig_tolerance_deg, self.io.rig_tolerance_mm),
            scene_topic=cfg.scene_topic,
            wrist_topic=cfg.wrist_topic,
            use_success_topic=self.io.use_success_topic,
        )
        self.progress_pub = self.create_publisher(String, names.AGENT_PROGRESS, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, 10)
        self._progress_lock = threading.Lock()
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

    def _run(self) -> None:
        from meld_core.train.evaluation import evaluate_run
        from meld_core.train.trainer import run_training

        cfg = self.config
        log = self.get_logger()
        try:
            if not wait_for_inputs(self.link, self.link.home_client.service_is_ready, cfg.inputs_timeout_s,
                                   should_stop=lambda: self.stopping):
                self.result = "stopped"
                return
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
                    hooks=[AgentProgressHook(log.info, self._report)],
                    progress_bars=False,
                    trainer_callback=self._set_trainer,
                )
                c = trainer.counters
                log.info(
                    f"training {'stopped' if trainer.stop_requested else 'finished'}: {c.iteration} "
                    f"iterations, {c.episodes} episodes, {c.env_steps} env steps, {c.model_steps} model "
                    f"steps, {c.ac_steps} AC steps (resume:=true continues)"
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
            self.result = "stopped" if self.stopping else "done"
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
        """Publish the trainer's progress and the learner's diagnostics (every second and at every
        episode; called from the timer and from the trainer thread)."""
        with self._progress_lock:
            self._publish_report()

    def _publish_report(self) -> None:
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
    node = None
    signals = start_ros(args, on_stop=lambda: node.request_stop() if node is not None else None)
    executor = MultiThreadedExecutor(num_threads=4)
    code = 0
    try:
        node = AgentNode()
        executor.add_node(node)
        abort_at = None
        while not (node.finished.is_set() and node.config.shutdown_when_done):
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            if signals.stop_requested and abort_at is None:
                node.get_logger().warning(
                    f"stopping: checkpoint after the running episode (<= {STOP_GRACE_S:.0f} s, or at once "
                    "if the robot graph is going down); signal again after 2 s to abort")
                node.request_stop()
                abort_at = time.monotonic() + STOP_GRACE_S
            if abort_at is not None:
                if node.finished.is_set():
                    break
                if time.monotonic() > abort_at or inputs_silent(node.link, GRAPH_GONE_S):
                    # Ctrl-C stops the rest of the graph too: do not wait for a robot that is gone.
                    node.link.abort()
        if node._thread is not None:
            node._thread.join(timeout=10.0)
        code = 0 if node.result != "failed" else 1
    except KeyboardInterrupt:
        code = 130  # aborted by a second signal
    except Exception as exc:
        code = exit_code(exc, node, signals, "agent_node")
    finally:
        signals.settle()

        def stop_robot(agent: AgentNode) -> None:
            agent.link.abort()
            agent.link.stop_arm()

        finish(node, executor, stop_robot)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
