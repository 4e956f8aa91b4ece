"""meld_core: the ROS-free half of meld_ros (MELD learner, simulation, robot maths, device drivers).

Importing this package is cheap and never imports ROS; submodules are imported on demand.
"""

__version__ = "0.1.0"
