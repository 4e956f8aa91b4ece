"""The meta-training loop in-process: artefacts, stop requests, resume, stage 2, evaluation tables."""

import dataclasses
import json
import math
import threading

import numpy as np
import pytest

from meld_core.algo.replay import ReplayStore
from meld_core.config import RunConfig, config_from_dict
from meld_core.config.presets import UnknownPresetError, preset_config
from meld_core.envs.point_nav import PointNavConfig, PointNavEnv
from meld_core.train.evaluation import evaluate, evaluate_run, validation_tasks
from meld_core.train.hooks import TrainerHooks
from meld_core.train.metrics import read_metrics_csv
from meld_core.train.rundir import ROLE_LOCKS, RunDir, RunDirError
from meld_core.train.setup import ConfigMismatchError
from meld_core.train.trainer import Trainer, run_training


def tiny(**train):
    """The smoke preset, trimmed further for unit tests."""
    cfg = preset_config("point_nav", "smoke")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train)) if train else cfg


def latest_eval(eval_root):
    """The newest evaluation folder (eval/latest.json) and its summary.json."""
    folder = eval_root / json.loads((eval_root / "latest.json").read_text())["folder"]
    return folder, json.loads((folder / "summary.json").read_text())


def episode_ids(run_dir):
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "episodes").glob("task_*/ep_*.npz"))


def test_config_round_trips_through_yaml(tmp_path):
    import yaml

    cfg = preset_config("point_nav", "small", "sparse")
    text = yaml.safe_dump(dataclasses.asdict(cfg))
    again = config_from_dict(RunConfig, yaml.safe_load(text))
    assert again == cfg and again.model.reward_input == "sparse" and again.model.reward_target == "dense"
    assert isinstance(again.build_env_config(), PointNavConfig)


def test_presets_exist_for_point_nav_and_reject_unknown_names():
    for name in ("smoke", "small", "paper"):
        cfg = preset_config("point_nav", name)
        env = PointNavEnv(cfg.build_env_config())
        assert env.spec.image_shape == cfg.model.image_shape
    with pytest.raises(UnknownPresetError, match="smoke"):
        preset_config("point_nav", "huge")


def test_point_nav_small_preset_covers_the_arc_and_gives_the_sparse_critic_the_trial():
    dense, sparse = preset_config("point_nav", "small"), preset_config("point_nav", "small", "sparse")
    env = PointNavEnv(dense.build_env_config())
    c = env.config
    # Any goal on the arc lies within the success circle of some train goal (no gap to "snap" across).
    success_half_angle = math.degrees(2 * math.asin(c.success_radius / (2 * c.goal_radius))) / 2
    angles = sorted(float(t.params["angle_deg"]) for t in env.train_tasks)
    gaps = [angles[0], 180.0 - angles[-1]] + [b - a for a, b in zip(angles, angles[1:])]
    assert max(gaps[:2]) < success_half_angle and max(gaps[2:]) / 2 < success_half_angle
    assert not dense.sac.td_across_resets and dense.sac.td_sparse_weight == 0
    assert sparse.sac.td_across_resets and sparse.sac.td_sparse_weight > 0 and sparse.sac.td_reward == "next"
    assert sparse.model.reward_input == "sparse" and dense.model.reward_input == "dense"
    assert dataclasses.replace(sparse, sac=dense.sac, model=dense.model) == dense


def test_smoke_run_leaves_every_artefact(tmp_path):
    trainer = run_training(tiny(), tmp_path / "run", progress_bars=False)
    c = trainer.counters
    t = trainer.config.train
    E, T = t.episodes_per_trial, 8
    n_train = 3
    assert c.phase == "done" and c.iteration == t.num_iterations
    assert c.episodes == n_train * E * t.init_collect_trials_per_task + t.num_iterations * E
    assert c.env_steps == c.episodes * T
    warmup_steps = n_train * E * T
    assert c.pretrain_steps == int(warmup_steps * t.init_model_train_ratio)
    assert c.model_steps == c.pretrain_steps + t.num_iterations * int(E * T * t.model_train_ratio)
    assert c.ac_steps == t.num_iterations * int(E * T * t.ac_train_ratio)
    run = tmp_path / "run"
    assert episode_ids(run) == list(range(c.episodes))
    rd = RunDir(run)
    assert rd.latest_checkpoint() is not None and len(rd.checkpoint_paths()) <= t.keep_checkpoints
    assert list((run / "tb").glob("events.out.tfevents.*"))
    tags = {row["tag"] for row in read_metrics_csv(run / "metrics.csv")}
    assert {"eval/success_ep1", "eval/success_ep2", "model/elbo", "ac/alpha", "speed/env_steps_per_s",
            "pretrain/elbo"} <= tags
    folder, summary = latest_eval(run / "eval")
    assert folder.name == f"step_{c.env_steps:09d}"
    assert summary["final"] and summary["source"] == "training (end)"
    assert len(summary["success_per_position"]) == E and summary["videos"] and summary["plots"]
    assert (folder / summary["videos"][0]).stat().st_size > 1000
    assert "all held-out tasks" in (folder / "success.md").read_text()
    assert not (run / "eval" / "summary.json").exists()  # every evaluation in its own folder
    assert json.loads((run / "progress.json").read_text())["status"] == "finished"


class StopAfterEpisodes(TrainerHooks):
    def __init__(self, n):
        self.n = n
        self.closed = False

    def on_episode(self, trainer, episode):
        if trainer.counters.phase == "train" and trainer.counters.episodes >= self.n:
            trainer.request_stop()


def test_stop_request_checkpoints_and_resume_continues(tmp_path):
    cfg = tiny(num_iterations=4, checkpoint_interval=100, eval_interval=100)
    run = tmp_path / "run"
    warmup = 3 * 2 * cfg.train.init_collect_trials_per_task
    trainer = Trainer(cfg, run, hooks=[StopAfterEpisodes(warmup + 3)], progress_bars=False)
    closed = []
    trainer._env_factory = lambda c: _ClosingEnv(c, closed)
    trainer.run()
    assert closed == [True]  # env.close() is always called
    c = trainer.counters
    assert c.phase == "train" and trainer.stop_requested
    # stopped in the second iteration's first episode: that episode is stored, its training is not counted
    assert c.episodes == warmup + 3 and c.iteration == 1
    state = RunDir(run).load_checkpoint()
    assert state["counters"]["episodes"] == warmup + 3
    with pytest.raises(RunDirError, match="--resume"):
        Trainer(cfg, run, progress_bars=False).run()
    resumed = run_training(None, run, resume=True, progress_bars=False)
    r = resumed.counters
    assert r.phase == "done" and r.iteration == 4 and r.model_steps > c.model_steps
    assert episode_ids(run) == list(range(r.episodes))
    assert r.episodes == warmup + 3 + 3 * 2


class _ClosingEnv(PointNavEnv):
    def __init__(self, cfg, closed):
        super().__init__(cfg.build_env_config())
        self._closed = closed

    def close(self):
        self._closed.append(True)


def test_stop_from_another_thread(tmp_path):
    cfg = tiny(num_iterations=10_000)
    trainer = Trainer(cfg, tmp_path / "run", progress_bars=False)
    timer = threading.Timer(4.0, trainer.request_stop)
    timer.start()
    try:
        trainer.run()
    finally:
        timer.cancel()
    assert trainer.stop_requested and trainer.counters.iteration < 10_000
    assert RunDir(tmp_path / "run").latest_checkpoint() is not None


def test_run_dir_of_another_config_is_refused(tmp_path):
    run_training(tiny(num_iterations=1), tmp_path / "run", progress_bars=False)
    other = tiny(num_iterations=1, eval_trials=1)
    with pytest.raises(ConfigMismatchError, match="different configuration"):
        run_training(other, tmp_path / "run", resume=True, progress_bars=False)


def test_sparse_stage_reads_a_stage_one_run_as_offline_data(tmp_path):
    stage1 = tmp_path / "stage1"
    run_training(tiny(num_iterations=1), stage1, progress_bars=False)
    n_stage1 = len(episode_ids(stage1))
    cfg = preset_config("point_nav", "smoke", "sparse", str(stage1))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_iterations=2))
    trainer = run_training(cfg, tmp_path / "stage2", progress_bars=False)
    assert trainer.replay.offline is not None and trainer.replay.offline.total_episodes == n_stage1
    assert len(episode_ids(stage1)) == n_stage1  # nothing written into the stage-1 run
    _, summary = latest_eval(tmp_path / "stage2" / "eval")
    assert summary["reward_input"] == "sparse"


def test_offline_run_with_other_tasks_is_refused(tmp_path):
    stage1 = tmp_path / "stage1"
    cfg1 = tiny(num_iterations=1)
    cfg1 = dataclasses.replace(cfg1, env_config={**cfg1.env_config, "task_seed": 7})
    run_training(cfg1, stage1, progress_bars=False)
    cfg = preset_config("point_nav", "smoke", "sparse", str(stage1))
    with pytest.raises(ConfigMismatchError, match="train tasks"):
        run_training(cfg, tmp_path / "stage2", progress_bars=False)


class GoToGoal:
    """A scripted agent that knows the goal after the first episode (tests the success table)."""

    def __init__(self, env):
        self.env = env

    def reset_belief(self):
        self.episode = -1

    def act(self, image, reward, *, episode_start, deterministic=False):
        self.episode += int(episode_start)
        if self.episode == 0:
            return np.zeros(2, dtype=np.float32)
        delta = self.env._goal - self.env._pos
        return np.clip(delta / self.env.config.max_step, -1, 1).astype(np.float32)

    def predicted_reward(self):
        return 0.0, 1.0


def test_evaluate_reports_success_per_episode_position():
    env = PointNavEnv(PointNavConfig(num_eval_tasks=3, episode_length=10))
    result = evaluate(GoToGoal(env), env, env.eval_tasks, 2, 2, "sparse", record_trials=1)
    assert result.success_per_position == [0.0, 1.0]
    assert len(result.trials) == 6 and result.trials[0].episodes[0].video is not None
    assert result.trials[1].episodes[0].video is None
    table = result.table()
    assert "success ep 1" in table and "**1.00**" in table
    assert [row["trials"] for row in result.per_task()] == [2, 2, 2]


def test_replay_reload_sees_all_stored_episodes(tmp_path):
    trainer = run_training(tiny(num_iterations=1), tmp_path / "run", progress_bars=False)
    store = ReplayStore.load(trainer.config.replay, 3, tmp_path / "run" / "episodes")
    assert store.total_episodes == trainer.counters.episodes


def test_resume_with_a_larger_budget_continues_a_finished_run(tmp_path):
    run_training(tiny(num_iterations=2), tmp_path / "run", progress_bars=False)
    more = run_training(tiny(num_iterations=4), tmp_path / "run", resume=True, progress_bars=False)
    assert more.counters.iteration == 4 and more.counters.phase == "done"
    assert episode_ids(tmp_path / "run") == list(range(more.counters.episodes))
    stored = RunDir(tmp_path / "run").read_yaml(RunDir(tmp_path / "run").config_path)
    assert stored["train"]["num_iterations"] == 4


def test_widowx_small_sparse_stage_critic_sees_only_the_sparse_reward():
    dense = preset_config("widowx_insertion", "small")
    sparse = preset_config("widowx_insertion", "small", "sparse")
    for cfg, expected in ((dense, (1, 0, False, 1)), (sparse, (0, 1, True, 10))):
        assert (cfg.sac.td_dense_weight, cfg.sac.td_sparse_weight, cfg.sac.td_across_resets,
                cfg.sac.n_step) == expected
    assert sparse.model.reward_input == "sparse" and sparse.env_config["train_ports_per_pose"] == 4


@pytest.mark.render
def test_widowx_presets_match_the_environment():
    from meld_core.envs.registry import make_env

    for name in ("smoke", "small", "paper"):
        cfg = preset_config("widowx_insertion", name)
        env = make_env(cfg.env, cfg.build_env_config())
        try:
            assert tuple(env.spec.image_shape) == cfg.model.image_shape
        finally:
            env.close()


class PassThroughGoal(GoToGoal):
    """Goes to the goal in episode 1, then walks away at the last step: reached, but not a success."""

    def act(self, image, reward, *, episode_start, deterministic=False):
        self.t = 0 if episode_start else self.t + 1
        action = super().act(image, reward, episode_start=episode_start)
        if self.episode == 1 and self.t == self.env.config.episode_length - 1:
            return np.array([0.0, -1.0], dtype=np.float32)
        return action


def test_evaluate_reports_reached_at_any_frame_apart_from_final_success():
    env = PointNavEnv(PointNavConfig(num_eval_tasks=2, episode_length=10))
    result = evaluate(PassThroughGoal(env), env, env.eval_tasks, 2, 1, "sparse")
    assert result.success_per_position == [0.0, 0.0]
    assert result.reached_per_position == [0.0, 1.0]
    assert result.scalars()["reached_ep2"] == 1.0 and result.summary()["reached_per_position"] == [0.0, 1.0]


def test_validation_tasks_spread_over_the_list_and_cycle():
    tasks = list(range(100))
    assert validation_tasks(tasks, 5) == [0, 25, 50, 74, 99]
    assert validation_tasks(tasks, 1) == [0]
    assert len(set(validation_tasks(tasks, 40))) == 40
    assert validation_tasks([7, 8, 9], 5) == [7, 8, 9, 7, 8]


def scripted_validation(monkeypatch, scores):
    """Real validation rollouts whose last-episode successes are overwritten by `scores`, in order."""
    import meld_core.train.evaluation as evaluation_module

    queue = list(scores)

    def scripted(agent, env, tasks, *args, **kwargs):
        result = evaluate(agent, env, tasks, *args, **kwargs)  # the real one, imported above
        if tasks[0].split == "train":
            wins = round(queue.pop(0) * len(result.trials))
            for k, trial in enumerate(result.trials):
                trial.episodes[-1].successes[-1] = k < wins
        return result

    monkeypatch.setattr(evaluation_module, "evaluate", scripted)
    return queue


def test_validation_keeps_the_best_checkpoint_newest_on_ties(tmp_path, monkeypatch):
    run = tmp_path / "run"
    left = scripted_validation(monkeypatch, [0.5, 1.0, 0.0, 1.0])
    cfg = tiny(num_iterations=8, eval_interval=2, validation_trials=2)
    trainer = run_training(cfg, run, progress_bars=False)
    assert left == [] and trainer.counters.evaluations == 4
    rd = RunDir(run)
    records = rd.eval_history()
    assert [r["validation_success_per_position"][-1] for r in records] == [0.5, 1.0, 0.0, 1.0]
    info = rd.best_info()
    assert info["score"] == 1.0 and info["counters"] == records[3]["counters"]
    best = rd.load_checkpoint(rd.resolve_checkpoint("best"))
    assert best["counters"] == info["counters"]
    tags = {row["tag"] for row in read_metrics_csv(run / "metrics.csv")}
    assert {"validation/success_ep1", "validation/success_ep2"} <= tags

    # A resumed run remembers the best score: a worse validation keeps best.pt, an equal one replaces it.
    scripted_validation(monkeypatch, [0.5, 1.0])
    run_training(tiny(num_iterations=12, eval_interval=2, validation_trials=2), run, resume=True,
                 progress_bars=False)
    records = RunDir(run).eval_history()
    assert RunDir(run).best_info()["counters"] == records[-1]["counters"]
    assert records[-2]["validation_success_per_position"][-1] == 0.5


def test_eval_of_the_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    run_training(tiny(), run, progress_bars=False)
    result, summary = evaluate_run(run, rounds=1, video_trials=0, checkpoint="best")
    assert summary["checkpoint"] == "best" and summary["counters"] == RunDir(run).best_info()["counters"]
    assert len(result.trials) == 2


class _Killed(BaseException):
    """Stands in for a SIGKILL: nothing after it runs (no final checkpoint, no stop handling)."""


class KillDuringTraining(TrainerHooks):
    """Dies in the middle of iteration `iteration`'s gradient steps (its trial is already stored)."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_gradient_step(self, trainer, kind, metrics):
        if trainer.counters.iteration == self.iteration and kind == "ac":
            raise _Killed


def test_a_resumed_run_trains_the_iterations_it_owes(tmp_path):
    # Before: trials collected after the checkpoint were credited as iterations without their
    # gradient steps, so a killed-and-resumed run ended "done" with fewer model and AC steps.
    cfg = tiny(num_iterations=4, checkpoint_interval=100, eval_interval=100)
    whole = run_training(cfg, tmp_path / "whole", progress_bars=False).counters
    run = tmp_path / "killed"
    with pytest.raises(_Killed):
        run_training(cfg, run, hooks=[KillDuringTraining(2)], progress_bars=False)
    assert RunDir(run).load_checkpoint()["counters"]["iteration"] == 0  # the one after pre-training
    resumed = run_training(None, run, resume=True, progress_bars=False).counters
    assert resumed.phase == "done" and resumed.iteration == 4
    assert (resumed.model_steps, resumed.ac_steps) == (whole.model_steps, whole.ac_steps)
    assert resumed.episodes == whole.episodes  # the owed iterations were trained, not collected again
    assert episode_ids(run) == list(range(resumed.episodes))


def test_stage_two_can_start_from_stage_one_weights(tmp_path):
    import torch

    stage1 = tmp_path / "stage1"
    run_training(tiny(num_iterations=2, eval_interval=2, validation_trials=1), stage1, progress_bars=False)
    best = RunDir(stage1).load_checkpoint(RunDir(stage1).best_checkpoint_path)["agent"]
    cfg = preset_config("point_nav", "smoke", "sparse", str(stage1))
    cfg = dataclasses.replace(cfg, init_from=str(stage1),
                              train=dataclasses.replace(cfg.train, num_iterations=1))
    seen = {}

    class Capture(TrainerHooks):
        def on_start(self, trainer):
            seen["model"] = {k: v.clone() for k, v in trainer.agent.model.state_dict().items()}
            seen["actor"] = {k: v.clone() for k, v in trainer.agent.sac.actor.state_dict().items()}

    run_training(cfg, tmp_path / "stage2", hooks=[Capture()], progress_bars=False)
    assert all(torch.equal(seen["model"][k], v) for k, v in best["model"].items())
    assert all(torch.equal(seen["actor"][k], best["sac"][f"actor.{k}"]) for k in seen["actor"])
    with pytest.raises(RunDirError, match="not a meld run directory"):
        run_training(dataclasses.replace(cfg, init_from=str(tmp_path / "nowhere")), tmp_path / "stage2b",
                     progress_bars=False)


def test_tensorboard_holds_env_step_curves_videos_plots_config_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = run_training(tiny(), tmp_path / "run", progress_bars=False)
    c = trainer.counters
    acc = EventAccumulator(str(tmp_path / "run" / "tb"),
                           size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"eval/video/trial_1", "eval/reward_prediction/trial_1"} <= set(tags["images"])
    assert "config/text_summary" in tags["tensors"]
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(acc.summary_metadata)
    video = acc.Images("eval/video/trial_1")[-1]
    assert video.encoded_image_string[:4] == b"GIF8" and video.step == c.env_steps
    config_text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "batch_size: 64" in config_text and "episode_length: 8" in config_text
    # x-axis: env steps (the final evaluation happens at the run's last env step)
    assert acc.Scalars("eval/success_ep2")[-1].step == c.env_steps
    assert [e.step for e in acc.Scalars("speed/env_steps_per_s")] == sorted(
        row["env_steps"] for row in read_metrics_csv(tmp_path / "run" / "metrics.csv")
        if row["tag"] == "speed/env_steps_per_s")
    assert acc.Scalars("pretrain/elbo")[-1].step == c.pretrain_steps  # pre-training has no env steps
    rows = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    assert max(row["global_step"] for row in rows) == c.global_step  # the CSV keeps the global step


def test_a_start_that_fails_before_the_loop_writes_nothing(tmp_path):
    from meld_core.train.trainer import default_agent_factory

    class BrokenAgent(RuntimeError):
        pass

    def agent_factory(config, spec):
        raise BrokenAgent("no such device")

    run = tmp_path / "run"
    with pytest.raises(BrokenAgent):
        Trainer(tiny(), run, agent_factory=agent_factory, progress_bars=False).run()
    assert not run.exists()
    trainer = Trainer(tiny(num_iterations=1), run, agent_factory=default_agent_factory, progress_bars=False)
    trainer.run()
    assert trainer.counters.phase == "done"
    # a resume whose agent cannot be built leaves the run's files as they were (the lock file holds
    # the pid of whichever process has the run: every start rewrites them)
    locks = set(ROLE_LOCKS.values())
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name not in locks}
    with pytest.raises(BrokenAgent):
        Trainer(tiny(num_iterations=5), run, agent_factory=agent_factory, resume=True,
                progress_bars=False).run()
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name not in locks} == before


def test_console_progress_bar_and_status_lines(tmp_path, caplog):
    import io
    import logging

    from meld_core.train.hooks import ConsoleProgress

    stream = io.StringIO()
    run_training(tiny(num_iterations=2), tmp_path / "bars", progress_bars=False,
                 hooks=[ConsoleProgress(bars=True, stream=stream)])
    shown = stream.getvalue()
    for text in ("warm-up (random policy)", "model pre-training", "meta-training", "elbo", "critic", "trial",
                 "2/2"):
        assert text in shown
    with caplog.at_level(logging.INFO, logger="meld_core.train.progress"):
        run_training(tiny(num_iterations=2), tmp_path / "lines", progress_bars=False,
                     hooks=[ConsoleProgress(status_interval_s=1e-6, bars=False)])
    lines = [r.getMessage() for r in caplog.records if r.name == "meld_core.train.progress"]
    assert any(line.startswith("status: warm-up (random policy) ") for line in lines)
    assert any("meta-training 1/2 iterations (50%)" in line and "env steps/s" in line and "ETA" in line
               for line in lines)
    assert any("held-out trial 1/2" in line for line in lines)  # during the evaluation too
    assert any("eval success" in line for line in lines)

class StopDuringTraining(TrainerHooks):
    """Requests a stop in the middle of iteration `iteration`'s AC steps."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_gradient_step(self, trainer, kind, metrics):
        if trainer.counters.iteration == self.iteration and kind == "ac":
            trainer.request_stop()


def test_a_stop_in_the_middle_of_an_iteration_resumes_with_the_rest_of_its_gradient_steps(tmp_path):
    # Before: the stop's checkpoint counted the iteration's first gradient steps, and the resume took
    # all of them again, so a stopped-and-resumed run took more model and AC steps than an uninterrupted one.
    cfg = tiny(num_iterations=3, checkpoint_interval=100, eval_interval=100)
    whole = run_training(cfg, tmp_path / "whole", progress_bars=False).counters
    run = tmp_path / "stopped"
    stopped = run_training(cfg, run, hooks=[StopDuringTraining(1)], progress_bars=False).counters
    assert stopped.iteration == 1
    resumed = run_training(None, run, resume=True, progress_bars=False).counters
    assert resumed.phase == "done" and resumed.iteration == 3
    assert (resumed.model_steps, resumed.ac_steps) == (whole.model_steps, whole.ac_steps)
    assert stopped.ac_steps_in_iteration == 1 and resumed.ac_steps_in_iteration == 0
