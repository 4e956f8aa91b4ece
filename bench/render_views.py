"""Render what the agent sees in the WidowX insertion env, for three tasks, into one PNG.

    MUJOCO_GL=egl .venv/bin/python bench/render_views.py            # -> bench/out/camera_views.png

docs/camera_views.png was made with it (pass --out docs/camera_views.png to update the doc image).

Rows: three held-out tasks (different goal ports and rig poses), at the reset pose. Columns: the
agent's 64x64 scene and wrist images (upscaled 4x, nearest neighbour, so pixels stay visible), and
the 256x256 video frame of the scene camera with the goal port marked in red (never shown to the
agent). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/camera_views.png"),
                        help="image to write (docs/camera_views.png was made with this script)")
    parser.add_argument("--tasks", type=int, nargs=3, default=[0, 1, 2], help="held-out task indices")
    parser.add_argument("--scale", type=int, default=4, help="upscaling of the 64x64 images")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    import cv2
    import numpy as np

    from meld_core.envs.widowx_insertion import WidowXInsertionConfig, WidowXInsertionEnv

    env = WidowXInsertionEnv(WidowXInsertionConfig(video_size=64 * args.scale), seed=0)
    rows = []
    for index in args.tasks:
        task = env.eval_tasks[index]
        env.set_task(task)
        obs = env.reset()
        size = env.config.image_size
        scene, wrist = obs.image[:size], obs.image[size:]
        big = [cv2.resize(im, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
               for im in (scene, wrist)]
        video = env.render_frame()[:, : 64 * args.scale]
        row = np.concatenate([big[0], big[1], video], axis=1)
        label = (f"port {task.params['port']}  rot {task.params['rotation_deg']:+.1f} deg  "
                 f"shift {task.params['translation_mm']:+.1f} mm")
        header = np.full((28, row.shape[1], 3), 255, np.uint8)
        cv2.putText(header, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([header, row], axis=0))
    env.close()
    titles = np.full((28, rows[0].shape[1], 3), 235, np.uint8)
    width = 64 * args.scale
    for i, title in enumerate(("agent: scene 64x64", "agent: wrist 64x64", "video: scene, goal in red")):
        cv2.putText(titles, title, (8 + i * width, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    sheet = np.concatenate([titles, *rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(json.dumps({"bench": "render_views", "out": str(args.out), "shape": list(sheet.shape)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
