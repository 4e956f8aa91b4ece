"""Robot data out of a run directory, in the ecosystem's formats.

    meld export --run-dir runs/wx --format mcap --out exports/wx_mcap
    meld export --run-dir runs/wx --format lerobot --out exports/wx_lerobot

- `run_episodes`: a run's episode files in id order, the selection syntax, task names, time lines.
- `mcap_export`: MCAP files with ROS 2 messages (CDR) on the robot graph's topics, which Foxglove
  opens and `ros2 bag info` / `ros2 bag play` read (`ros2_msgs` holds the message definitions).
- `lerobot_export`: a LeRobot dataset (codebase version v3.0: parquet + H.264 MP4 + meta).
- `preview`: a Foxglove-like picture of an MCAP file (camera panels, joint and reward plots).

The exporters need the `export` extra (`pip install -e '.[export]'`: mcap, mcap-ros2-support, av,
pyarrow, pandas); they are imported only by the functions that use them.
"""
