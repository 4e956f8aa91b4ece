"""Node logic without ROS: what each `meld_ros` node does, as plain Python that tests reach.

Robot link and remote TaskEnv (agent node), agent run setup, arm bridge (arm node), simulated
robot (sim node), gz adapter, ROS parameter mapping of the node configs.
"""
